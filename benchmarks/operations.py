"""
Items 2 and 3: requests and TCP connections per operation, and listing 1,000 dashboards.

Every operation runs once with this provider's operator and once the way a DAG author would write
it with HttpOperator. One HttpOperator is one task, so an operation that needs several requests
becomes several tasks (a lookup, a branch, a POST), each with its own session. Counted from the
emulator's request log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.http.operators.http import HttpOperator
from phenv_emulator import SEED

from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.operators.batch_exports import (
    PostHogPauseBatchExportOperator,
    PostHogTestBatchExportOperator,
    PostHogUnpauseBatchExportOperator,
)
from airflow_provider_phenv.operators.dashboards import (
    PostHogAddDashboardCollaboratorOperator,
    PostHogCreateDashboardOperator,
)
from benchmarks.harness import HTTP_CONN_ID, Bench, Figure, Traffic, fake_context, median

JSON_HEADERS = {"Content-Type": "application/json"}


def http_task(method: str, endpoint: str, body: Any = None, **kwargs: Any) -> Any:
    """One HttpOperator task; returns the parsed JSON answer (what the next task would XCom-pull)."""
    operator = HttpOperator(
        task_id="http",
        http_conn_id=HTTP_CONN_ID,
        method=method,
        endpoint=endpoint,
        data=json.dumps(body) if body is not None else kwargs.pop("data", None),
        headers=JSON_HEADERS if body is not None else None,
        response_filter=kwargs.pop("response_filter", lambda response: response.json()),
        **kwargs,
    )
    return operator.execute(fake_context())


def run_ours(operator: Any) -> Any:
    return operator.execute(fake_context())


# -- item 2: one operation each --------------------------------------------------------------------


def _operations(bench: Bench) -> dict[str, tuple[Callable[[], Any], Callable[[], Any], int | None]]:
    """name -> (ours, with HttpOperator, the fewest requests PostHog's API allows)."""
    api = bench.api
    export = SEED.s3_export_id
    new_name = "Bench dashboard"

    def http_create(name: str) -> None:
        found = http_task("GET", f"{api}/dashboards/", data={"search": name})
        # A branch task (no request) decides; the POST runs only when no dashboard has the name.
        if not any(d["name"] == name for d in found["results"]):
            http_task("POST", f"{api}/dashboards/", {"name": name})

    def http_test_export() -> None:
        stored = http_task("GET", f"{api}/batch_exports/{export}/")
        destination = stored["destination"]["type"]
        steps = http_task("GET", f"{api}/batch_exports/test/", data={"destination": destination})["steps"]
        payload = {key: stored[key] for key in ("name", "interval")}
        payload["destination"] = {"type": destination, "config": {}}
        for step in range(len(steps)):  # one mapped task instance per step
            http_task("POST", f"{api}/batch_exports/{export}/run_test_step/", {**payload, "step": step})

    steps_for_s3 = len(PostHogHook().get_batch_export_test_steps("AwsS3")["steps"])
    return {
        "pause": (
            lambda: run_ours(PostHogPauseBatchExportOperator(task_id="t", batch_export_id=export)),
            lambda: http_task("POST", f"{api}/batch_exports/{export}/pause/"),
            1,
        ),
        "unpause": (
            lambda: run_ours(PostHogUnpauseBatchExportOperator(task_id="t", batch_export_id=export)),
            lambda: http_task("POST", f"{api}/batch_exports/{export}/unpause/", {"backfill": False}),
            1,
        ),
        "add collaborator": (
            lambda: run_ours(
                PostHogAddDashboardCollaboratorOperator(
                    task_id="t", dashboard_id=SEED.restricted_dashboard_id, user_uuid=SEED.bob_uuid
                )
            ),
            lambda: http_task(
                "POST",
                f"{api}/dashboards/{SEED.restricted_dashboard_id}/collaborators/",
                {"user_uuid": SEED.bob_uuid, "level": 37},
            ),
            1,
        ),
        "create dashboard, reuse (new name)": (
            lambda: run_ours(PostHogCreateDashboardOperator(task_id="t", name=new_name)),
            lambda: http_create(new_name),
            2,
        ),
        "create dashboard, reuse (name exists)": (
            lambda: run_ours(PostHogCreateDashboardOperator(task_id="t", name="Product metrics")),
            lambda: http_create("Product metrics"),
            1,
        ),
        # PostHog needs name, interval and destination in the test body (read the export), and
        # tells the number of steps only through batch_exports/test/: 2 reads, then 1 POST per step.
        "test AwsS3 export": (
            lambda: run_ours(PostHogTestBatchExportOperator(task_id="t", batch_export_id=export)),
            http_test_export,
            2 + steps_for_s3,
        ),
    }


def run_operations(bench: Bench) -> tuple[list[Figure], dict[str, Any]]:
    bench.reset()
    figures, details = [], {}
    for name, (ours, http, minimum) in _operations(bench).items():
        bench.reset()
        mine = bench.measure(ours)
        bench.reset()
        theirs = bench.measure(http)
        details[name] = {"ours": mine.to_json(), "http": theirs.to_json(), "minimum": minimum}
        figures.append(
            Figure(
                2,
                f"{name}: requests",
                mine.requests,
                "requests",
                theirs.requests,
                f"<= {minimum}" if name.startswith("create") else f"== {minimum}",
                mine.requests <= minimum,
                f"HttpOperator: {theirs.requests} task(s)" if theirs.requests > 1 else "",
            )
        )
        figures.append(
            Figure(
                2,
                f"{name}: TCP connections",
                mine.connections,
                "connections",
                theirs.connections,
                "== 1",
                mine.connections == 1,
            )
        )
    return figures, details


# -- item 3: listing 1,000 dashboards ---------------------------------------------------------------


def next_page(response: Any) -> dict[str, Any] | None:
    """HttpOperator pagination_function following PostHog's absolute ``next`` link."""
    link = response.json().get("next")
    if not link:
        return None
    parts = urlsplit(link)
    return {"endpoint": f"{parts.path}?{parts.query}"}


def _all_results(responses: list[Any]) -> list[dict[str, Any]]:
    return [item for response in responses for item in response.json()["results"]]


def run_listing(bench: Bench, total: int, repeats: int) -> tuple[list[Figure], dict[str, Any]]:
    bench.reset()
    state = bench.emulator.state
    with state.lock:
        existing = sum(
            1 for d in state.dashboards.values() if d["team_id"] in (SEED.team_id, SEED.second_environment_id)
        )
    for number in range(total - existing):
        state.add_dashboard(f"Bench dashboard {number:05d}")
    listed: dict[str, int] = {}

    def ours() -> None:
        with PostHogHook() as hook:
            listed["ours"] = len(hook.list_dashboards())

    def http(limit: int | None) -> Callable[[], None]:
        def call() -> None:
            operator = HttpOperator(
                task_id="list",
                http_conn_id=HTTP_CONN_ID,
                method="GET",
                endpoint=f"{bench.api}/dashboards/",
                data={"limit": limit} if limit else None,
                pagination_function=next_page,
                response_filter=_all_results,
            )
            listed[f"http{limit or ''}"] = len(operator.execute(fake_context()))

        return call

    runs: dict[str, list[Traffic]] = {"ours": [], "http": [], "http500": []}
    for _ in range(repeats):
        runs["ours"].append(bench.measure(ours))
        runs["http"].append(bench.measure(http(None)))
        runs["http500"].append(bench.measure(http(500)))
    mine, theirs, theirs500 = (runs[key][-1] for key in ("ours", "http", "http500"))
    seconds = {key: median([t.seconds for t in rows]) for key, rows in runs.items()}
    details = {
        "dashboards": total,
        "listed": listed,
        "repeats": repeats,
        "ours": mine.to_json(),
        "http_default_limit": theirs.to_json(),
        "http_limit_500": theirs500.to_json(),
        "median_seconds": seconds,
    }
    note500 = (
        f"HttpOperator with limit=500: {theirs500.requests} requests, {theirs500.connections} connections, "
        f"{seconds['http500'] * 1000:.0f} ms"
    )
    figures = [
        Figure(
            3,
            f"list {total} dashboards: requests",
            mine.requests,
            "requests",
            theirs.requests,
            "<= 10",
            mine.requests <= 10,
            "HttpOperator with PostHog's default page (100)",
        ),
        Figure(
            3,
            f"list {total} dashboards: TCP connections",
            mine.connections,
            "connections",
            theirs.connections,
            "== 1",
            mine.connections == 1,
            note500,
        ),
        Figure(
            3,
            f"list {total} dashboards: wall time (median of {repeats})",
            round(seconds["ours"] * 1000, 1),
            "ms",
            round(seconds["http"] * 1000, 1),
        ),
    ]
    return figures, details
