"""
``python -m benchmarks.hostile [--case NAME]``: the hostile-server figures of issue 15.

Each case runs in a fresh interpreter against ``tests/helpers/hostile_server.py`` on 127.0.0.1
(in front of the bundled emulator where objects are created), with the hook's default limits
except a 2 s ``timeout`` (so the default ``request_deadline`` is 4 s) and no retries where the
case is about time. For each case it reports:

* **wall**: seconds from the first request to the error (or result); the goal is at most the
  configured deadline + 5 s where the case is about time;
* **memory**: peak RSS growth over the process's RSS just before the case (Linux ``VmHWM``, reset
  through ``/proc/self/clear_refs``); the goal is < 64 MB;
* **requests** that reached the server, **objects** created (dashboards / collaborators; the goal
  is exactly one), and **key**: occurrences of the API key (raw, stripped, escaped) in every
  captured text: log records, the exception, the trigger event; the goal is 0.

Prints a markdown table (for README "Reliability"). Not part of pytest: these are measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__" or os.environ.get("PHENV_HOSTILE_CHILD"):
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="phenv-hostile-home-"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")

KEY = "phx_benchHostileKey0123456789abcdef"
TIMEOUT = 2.0
DEADLINE = 2 * TIMEOUT  # the default request_deadline for that timeout
HOOK = {"timeout": TIMEOUT, "max_retries": 0, "backoff": 0.05, "backoff_max": 0.1}
EXPORT_ID = "01900000-0000-7000-8000-0000000000e1"


# -- measuring ---------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.texts.append(record.getMessage())


def _key_count(texts: list[str], key: str) -> int:
    variants = {key, key.strip(), repr(key)[1:-1], json.dumps(key)[1:-1]}
    # A fragment on each side of a character inside the key, too (the escaped form is the leak).
    core = key.strip()
    if any(c in core for c in "\r\n\x00"):
        variants |= {
            part for part in core.replace("\r", "\n").replace("\x00", "\n").split("\n") if len(part) >= 8
        }
    return sum(text.count(variant) for text in texts for variant in variants if variant)


# -- the cases ---------------------------------------------------------------------------------------


def _conn(url: str, key: str = KEY, **extra: Any) -> None:
    os.environ["AIRFLOW_CONN_POSTHOG_DEFAULT"] = json.dumps(
        {"conn_type": "posthog", "host": url, "password": key, "extra": {"project_id": "1", **extra}}
    )


def _sync(method: str, *args: Any, **hook: Any) -> Callable[[], Any]:
    def run() -> Any:
        from airflow_provider_phenv.hooks.posthog import PostHogHook

        with PostHogHook(**{**HOOK, **hook}) as h:
            result = getattr(h, method)(*args)
            return list(result) if not isinstance(result, (dict, list)) else result

    return run


def _async(method: str, *args: Any, **hook: Any) -> Callable[[], Any]:
    def run() -> Any:
        from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook

        async def main() -> Any:
            async with PostHogAsyncHook(**{**HOOK, **hook}) as h:
                result = getattr(h, method)(*args)
                if hasattr(result, "__aiter__"):
                    return [item async for item in result]
                return await result

        return asyncio.run(main())

    return run


def _trigger(**hook: Any) -> Callable[[], Any]:
    def run() -> Any:
        from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportLogsTrigger
        from tests.helpers.sensor_modes import run_trigger, utcnow

        trigger = PostHogBatchExportLogsTrigger(
            batch_export_id=EXPORT_ID,
            since=utcnow().isoformat(),
            criteria={"message_pattern": "never"},
            poll_interval=0.1,
            end_time=time.time() + 60,
            hook_params={**HOOK, **hook},
        )
        event = run_trigger(trigger, 120).payload
        if event["status"] == "error":
            raise TriggerErrorEvent(json.dumps(event))
        return event

    return run


class TriggerErrorEvent(Exception):
    """The trigger fired its ``error`` event (the message holds the event)."""


def _logs_page(request: Any) -> dict[str, Any]:
    from tests.helpers.sensor_modes import utcnow

    now = utcnow()
    return {
        "next": None,
        "results": [
            {"timestamp": now.replace(microsecond=n).isoformat(), "level": "INFO", "message": f"l{n}"}
            for n in range(500)
        ],
    }


def _case_setup(name: str) -> tuple[Callable[[], Any], dict[str, Any]]:
    """The action to time for case ``name``, and what the case needs (servers, budget...)."""
    from tests.helpers import hostile_server as hs

    kind, _, path = name.partition(":")
    meta: dict[str, Any] = {"budget": DEADLINE + 5}
    server = hs.HostileServer(max_seconds=60).start()
    meta["servers"] = [server]
    _conn(server.url)
    read = {"sync": _sync, "async": _async}.get(path)

    def export(**hook: Any) -> Callable[[], Any]:
        if path == "trigger":
            return _trigger(**hook)
        assert read is not None
        return read("get_batch_export", EXPORT_ID, **hook)

    if kind == "1-logs-before-ignored":
        frozen = _logs_page(None)
        server.on(hs.json_reply(frozen))
        if path == "sensor":
            return _poke_sensor(), meta
        action = _trigger() if path == "trigger" else read("iter_batch_export_logs", EXPORT_ID)  # type: ignore[misc]
        return action, meta
    if kind == "2-gzip-1GiB":
        hs.gzip_of_zeros(1 << 30)
        server.on(hs.gzip_bomb(1 << 30))
        return export(), meta
    if kind == "2-endless-chunked":
        server.on(hs.endless())
        return export(), meta
    if kind.startswith("3-key"):
        tail = {"3-key-LF": "\n", "3-key-CRLF": "\r\n"}.get(kind)
        key = KEY + tail if tail else KEY[:12] + "\n" + KEY[12:]
        meta["key"] = key
        _conn(server.url, key=key)
        server.on(hs.json_reply({"id": EXPORT_ID, "destination": None}))
        return export(max_retries=5), meta
    if kind == "4-slowloris-headers":
        server.on(hs.drip(interval=0.5, phase="headers"))
        return export(), meta
    if kind == "4-slowloris-body":
        server.on(hs.drip(interval=0.5, phase="body"))
        return export(), meta
    if kind == "5-next-loop":
        server.on(hs.json_reply(lambda r: {"next": r.target, "results": [{"id": 1, "name": "a"}]}))
        if path == "operator":
            return _create_dashboard("Loop", 0), meta
        if path == "async":  # the async hook lists runs only (triggers read, they do not provision)
            return _async("list_batch_export_runs", EXPORT_ID), meta
        return read("list_dashboards"), meta  # type: ignore[misc]
    if kind.startswith("6-"):
        return _creates(kind, server, meta)
    if kind.startswith("7-pause"):
        answer = {
            "7-pause-{}": hs.json_reply({}),
            "7-pause-empty-200": hs.reply(200, b""),
            "7-pause-204": hs.reply(204),
            "7-pause-304": hs.reply(304),
        }.get(kind)
        if answer is None:  # 302 to another host
            other = hs.HostileServer(host="127.0.0.2").start()
            meta["servers"].append(other)
            other.on(hs.json_reply({"paused": True}))
            answer = hs.redirect(302, other.url + "/pause/")
            meta["other"] = other
        server.on(answer)
        return _pause(), meta
    if kind == "7-async-302":
        server.on(hs.redirect(302, "/elsewhere/"))
        return export(), meta
    if kind == "9-detail-5MB":
        server.on(hs.json_reply({"type": "validation_error", "detail": "x" * 5_000_000}, status=400))
        return export(), meta
    if kind == "10-results-null":
        server.on(hs.json_reply({"results": None, "next": None}))
        return read("list_dashboards") if read else _trigger(), meta  # type: ignore[misc]
    if kind == "10-deep-json":
        server.on(hs.reply(200, "[" * 200_000 + "]" * 200_000))
        return export(), meta
    if kind == "11-proxy":
        proxy = hs.HostileServer().start()
        meta["servers"].append(proxy)
        meta["proxy"] = proxy
        proxy.on(hs.json_reply({"id": EXPORT_ID, "destination": None}))
        for variable in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            os.environ[variable] = proxy.url
        os.environ.pop("NO_PROXY", None)
        os.environ.pop("no_proxy", None)
        server.on(hs.json_reply({"id": EXPORT_ID, "destination": None, "results": [], "next": None}))
        return export(), meta
    if kind == "12-backoff-negative":
        return _build_sensor({"backoff": -1}), meta
    if kind == "12-timeout-inf":
        return _build_sensor({"timeout": float("inf")}), meta
    if kind == "held-redirect-other-host":
        other = hs.HostileServer(host="127.0.0.2").start()
        meta["servers"].append(other)
        meta["other"] = other
        server.on(hs.redirect(307, other.url + "/x/"))
        return export(), meta
    if kind == "held-invalid-json":
        server.on(hs.reply(200, "{oops"))
        return export(), meta
    if kind == "held-retry-after-huge":
        meta["budget"] = None
        server.on(hs.json_reply({"detail": "slow down"}, status=429, headers={"Retry-After": "1e9"}))
        return export(), meta
    if kind == "held-200-triggers-cancelled":
        server.on(hs.hang(30))
        return _many_triggers(server), meta
    raise SystemExit(f"unknown case {name}")


def _poke_sensor() -> Callable[[], Any]:
    def run() -> Any:
        from datetime import timedelta

        from tests.helpers.sensor_modes import FakeTI, make_context, sensor_for_mode, utcnow

        sensor = sensor_for_mode("poke", hook_params=HOOK, since=utcnow() - timedelta(hours=1))
        return sensor.execute(make_context(FakeTI(utcnow())))

    return run


def _pause() -> Callable[[], Any]:
    def run() -> Any:
        from airflow_provider_phenv.operators.batch_exports import PostHogPauseBatchExportOperator

        return PostHogPauseBatchExportOperator(
            task_id="p", batch_export_id=EXPORT_ID, hook_params=HOOK
        ).execute({})

    return run


def _build_sensor(hook_params: dict[str, Any]) -> Callable[[], Any]:
    def run() -> Any:
        from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportLogsSensor

        return PostHogBatchExportLogsSensor(task_id="s", batch_export_id=EXPORT_ID, hook_params=hook_params)

    return run


def _create_dashboard(name: str, retries: int, waits: tuple[float, ...] | None = None) -> Callable[[], Any]:
    def run() -> Any:
        from airflow_provider_phenv.operators.dashboards import PostHogCreateDashboardOperator

        operator = PostHogCreateDashboardOperator(
            task_id="c", name=name, if_exists="create", hook_params={**HOOK, "max_retries": retries}
        )
        if waits is not None:
            operator.lost_create_waits = waits
        return operator.execute({})

    return run


def _creates(kind: str, server: Any, meta: dict[str, Any]) -> tuple[Callable[[], Any], dict[str, Any]]:
    from phenv_emulator import SEED, PostHogEmulator

    from tests.helpers import hostile_server as hs

    emulator = PostHogEmulator(port=0).start()
    meta["emulator"] = emulator
    server.stop()
    front = hs.HostileServer(upstream=emulator.url, max_seconds=60).start()
    meta["servers"] = [front]
    _conn(front.url, key=emulator.api_key)
    meta["key"] = emulator.api_key
    fault, _, target = kind[2:].rpartition("-")
    answers = {
        "lost": hs.close(),
        "503": hs.json_reply({"detail": "unavailable"}, status=503),
        "520": hs.reply(520, "<html><title>520</title></html>", content_type="text/html"),
        "524": hs.reply(524, "<html><title>524</title></html>", content_type="text/html"),
        "nonjson201": hs.reply(201, "<html>Created</html>", content_type="text/html"),
    }
    meta["budget"] = None
    # late-commit: held 5 s before it reaches PostHog, past the 4 s deadline, before the look-ups end.
    action = hs.forward(delay=5.0) if fault == "late-commit" else hs.forward(then=answers[fault])
    if target == "dashboard":
        front.on(action, method="POST", path="/dashboards", times=1)
        meta["count"] = lambda: sum(
            d["name"] == "Exactly one" and not d.get("deleted") for d in emulator.state.dashboards.values()
        )
        return _create_dashboard("Exactly one", 3), meta

    front.on(action, method="POST", path="/collaborators", times=1)
    meta["count"] = lambda: sum(
        c["dashboard_id"] == SEED.restricted_dashboard_id and c["user_uuid"] == SEED.bob_uuid
        for c in emulator.state.collaborators
    )

    def add() -> Any:
        from airflow_provider_phenv.operators.dashboards import PostHogAddDashboardCollaboratorOperator

        return PostHogAddDashboardCollaboratorOperator(
            task_id="a",
            dashboard_id=SEED.restricted_dashboard_id,
            user_uuid=SEED.bob_uuid,
            hook_params={**HOOK, "max_retries": 3},
        ).execute({})

    return add, meta


def _many_triggers(server: Any) -> Callable[[], Any]:
    def run() -> Any:
        from tests.helpers.sensor_modes import cancel_logs_triggers_mid_request

        _, results, left = asyncio.run(
            cancel_logs_triggers_mid_request(
                server, EXPORT_ID, count=200, polls=400, poll_interval=1, hook_params={"timeout": 30}
            )
        )
        cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
        return f"{cancelled}/200 cancelled, {len(left)} tasks left"

    return run


CASES = [
    ("1-logs-before-ignored:sync", "#1 logs source ignores before= (full page repeated)"),
    ("1-logs-before-ignored:async", ""),
    ("1-logs-before-ignored:sensor", ""),
    ("1-logs-before-ignored:trigger", ""),
    ("2-gzip-1GiB:sync", "#2 1 MB gzip inflating to 1 GiB"),
    ("2-gzip-1GiB:async", ""),
    ("2-gzip-1GiB:trigger", ""),
    ("2-endless-chunked:sync", "#2 endless chunked body"),
    ("2-endless-chunked:async", ""),
    ("2-endless-chunked:trigger", ""),
    ("3-key-LF:sync", "#3 key stored with a trailing \\n (stripped, request succeeds)"),
    ("3-key-CRLF:async", "#3 key with a trailing \\r\\n"),
    ("3-key-inner:sync", "#3 key with a newline inside (refused, nothing sent)"),
    ("3-key-inner:async", ""),
    ("3-key-inner:trigger", ""),
    ("4-slowloris-headers:sync", "#4 one byte every 0.5 s (headers)"),
    ("4-slowloris-headers:async", ""),
    ("4-slowloris-body:sync", "#4 one byte every 0.5 s (body)"),
    ("4-slowloris-body:async", ""),
    ("4-slowloris-body:trigger", ""),
    ("5-next-loop:sync", "#5 next link back to the same page"),
    ("5-next-loop:async", ""),
    ("5-next-loop:operator", "#5 ... in the create-dashboard name lookup"),
    ("6-lost-dashboard:op", "#6 create dashboard: commit, then connection closed"),
    ("6-503-dashboard:op", "#6 commit, then 503"),
    ("6-520-dashboard:op", "#6 commit, then 520"),
    ("6-524-dashboard:op", "#6 commit, then 524"),
    ("6-nonjson201-dashboard:op", "#6 commit, then non-JSON 201"),
    ("6-late-commit-dashboard:op", "#6 commit lands 3 s after the client's 2 s read timeout"),
    ("6-lost-collaborator:op", "#6 add collaborator: commit, then connection closed"),
    ("6-503-collaborator:op", "#6 commit, then 503"),
    ("6-524-collaborator:op", "#6 commit, then 524"),
    ("6-nonjson201-collaborator:op", "#6 commit, then non-JSON 201"),
    ("7-pause-{}:op", "#7 pause answered {}"),
    ("7-pause-empty-200:op", "#7 pause answered with an empty 200"),
    ("7-pause-204:op", "#7 pause answered 204"),
    ("7-pause-304:op", "#7 pause answered 304"),
    ("7-pause-302:op", "#7 pause answered 302 to another host"),
    ("7-async-302:async", "#7 async hook given a 302"),
    ("7-async-302:trigger", ""),
    ("9-detail-5MB:sync", "#9 error detail of 5 MB"),
    ("9-detail-5MB:trigger", ""),
    ("10-results-null:sync", "#10 results: null"),
    ("10-results-null:trigger", ""),
    ("10-deep-json:sync", "#10 JSON nested 200,000 deep"),
    ("11-proxy:sync", "#11 HTTP_PROXY/ALL_PROXY set, plain-http loopback host"),
    ("11-proxy:async", ""),
    ("12-backoff-negative:sensor", "#12 hook_params backoff=-1"),
    ("12-timeout-inf:sensor", "#12 hook_params timeout=inf"),
    ("held-redirect-other-host:sync", "held: 307 to another host"),
    ("held-redirect-other-host:async", ""),
    ("held-invalid-json:sync", "held: invalid JSON in a 200"),
    ("held-retry-after-huge:sync", "held: 429 with Retry-After 1e9 (max_retries=0)"),
    ("held-200-triggers-cancelled:trigger", "held: 200 triggers cancelled mid-request"),
]


def run_case(name: str) -> dict[str, Any]:
    """Run one case in this process and return its figures."""
    sys.path.insert(0, str(ROOT))
    capture = _Capture()
    logging.getLogger().addHandler(capture)
    logging.getLogger().setLevel(logging.DEBUG)
    import airflow_provider_phenv.hooks.posthog  # noqa: F401 - imported before the baseline

    action, meta = _case_setup(name)
    key = meta.get("key", KEY)
    before = meta["count"]() if "count" in meta else None
    baseline_kb = _status_kb("VmRSS")
    _reset_peak()
    started = time.monotonic()
    try:
        result = action()
        outcome = "ok" if not isinstance(result, str) else f"ok: {result}"
        texts = [json.dumps(result, default=str)]
    except BaseException as error:
        outcome = type(error).__name__
        texts = [str(error), repr(error)]
    wall = time.monotonic() - started
    peak_kb = _status_kb("VmHWM")
    servers = meta["servers"]
    sent = sum(len(s.requests) for s in servers if s is not meta.get("other") and s is not meta.get("proxy"))
    elsewhere = sum(len(meta[k].requests) for k in ("other", "proxy") if k in meta)
    created = meta["count"]() - before if "count" in meta else None
    texts += capture.texts
    for server in servers:
        server.stop()
    if "emulator" in meta:
        meta["emulator"].stop()
    return {
        "case": name,
        "outcome": outcome,
        "wall": round(wall, 2),
        "budget": meta["budget"],
        "memory_mb": round(max(0, peak_kb - baseline_kb) / 1024, 1),
        "requests": sent,
        "elsewhere": elsewhere,
        "created": created,
        "key": _key_count(texts, key),
        "longest_text": max((len(t) for t in texts), default=0),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    notes = dict(CASES)
    lines = [
        "| case | path | outcome | wall s | goal s | peak memory MB | requests | to another host/proxy "
        "| objects created | key in texts |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        _kind, _, path = row["case"].partition(":")
        goal = f"<= {row['budget']:g}" if row["budget"] else ""
        created = "" if row["created"] is None else str(row["created"])
        lines.append(
            f"| {notes.get(row['case']) or '〃'} | {path} | {row['outcome']} | {row['wall']} | {goal} "
            f"| {row['memory_mb']} | {row['requests']} | {row['elsewhere']} | {created} | {row['key']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--case", help="run one case in this process and print its figures as JSON")
    parser.add_argument("--only", help="run the cases whose name contains this text")
    args = parser.parse_args()
    if args.case:
        print("PHENV-RESULT " + json.dumps(run_case(args.case)), flush=True)
        return
    rows = []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHENV_HOSTILE_CHILD": "1"}
    for name, _ in CASES:
        if args.only and args.only not in name:
            continue
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.hostile", "--case", name],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("PHENV-RESULT ")), None)
        if line is None:
            print(f"{name}: crashed\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        row = json.loads(line.removeprefix("PHENV-RESULT "))
        # The child's own stdout/stderr are captured texts too.
        row["key"] += _key_count([done.stdout, done.stderr], KEY) + sum(
            (done.stdout + done.stderr).count(part) for part in (KEY[:12], KEY[12:])
        )
        rows.append(row)
        print(f"{name}: {row['outcome']} in {row['wall']} s", file=sys.stderr, flush=True)
    print(_table(rows))


if __name__ == "__main__":
    main()
