"""
Issue 15 #6: exactly one dashboard and one collaborator under every fault that can follow a
commit. The hostile server stands in front of the emulator: it lets the create through (PostHog
commits it) and then breaks the answer, or holds the request so the commit lands after the
client gave up.
"""

from __future__ import annotations

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.operators.dashboards import (
    PostHogAddDashboardCollaboratorOperator,
    PostHogCreateDashboardOperator,
)
from tests.helpers.hostile_server import close, forward, json_reply, reply
from tests.hostile.conftest import FAST
from tests.runs.conftest import HOURLY, backfill_op, hours_ago

AFTER_COMMIT = {
    "lost": close(),
    "503": json_reply({"detail": "unavailable"}, status=503, headers={"Retry-After": "0"}),
    "500": json_reply({"type": "server_error", "detail": "boom"}, status=500),
    "520": reply(
        520,
        "<html><title>520: Web server is returning an unknown error</title></html>",
        content_type="text/html",
    ),
    "524": reply(524, "<html><title>524: A timeout occurred</title></html>", content_type="text/html"),
    "non-JSON 201": reply(201, "<html>Created</html>", content_type="text/html"),
    "empty 201": reply(201, b""),
    "201 of the wrong shape": json_reply({"created": True}, status=201),
}
HOOK = {**FAST, "max_retries": 3}


def _named(emulator, name):
    return [d for d in emulator.state.dashboards.values() if d["name"] == name and not d.get("deleted")]


def _creates(server):
    return [r for r in server.requests if r.method == "POST"]


@pytest.mark.parametrize("if_exists", ["reuse", "create"])
@pytest.mark.parametrize("fault", list(AFTER_COMMIT))
def test_one_dashboard_whatever_follows_the_commit(fronted, emulator, fault, if_exists):
    fronted.on(forward(then=AFTER_COMMIT[fault]), method="POST", path="/dashboards", times=1)
    operator = PostHogCreateDashboardOperator(
        task_id="c", name=f"Once {fault}", if_exists=if_exists, hook_params=HOOK
    )
    operator.lost_create_waits = (0.05,)
    result = operator.execute({})
    assert [d["id"] for d in _named(emulator, f"Once {fault}")] == [result["id"]]
    assert result["created"] is True
    assert len(_creates(fronted)) == 1


@pytest.mark.parametrize("if_exists", ["reuse", "create"])
@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_one_dashboard_when_the_commit_lands_after_the_read_timeout(fronted, emulator, if_exists):
    # The proxy holds the create for 1 s: the client's attempt ends at its 0.8 s deadline, the
    # first look-up finds nothing, and the commit lands before the look-ups are done.
    fronted.on(forward(delay=1.0), method="POST", path="/dashboards", times=1)
    operator = PostHogCreateDashboardOperator(
        task_id="c", name="Late commit", if_exists=if_exists, hook_params=HOOK
    )
    operator.lost_create_waits = (0.5, 1.0)
    result = operator.execute({})
    assert [d["id"] for d in _named(emulator, "Late commit")] == [result["id"]]
    assert len(_creates(fronted)) == 1
    looked_up = [r for r in fronted.requests if r.method == "GET"]
    assert len(looked_up) >= 3  # the name check, then at least two look-ups after the lost answer


def test_a_create_that_never_landed_is_sent_once_more(fronted, emulator):
    # Nothing committed (the proxy answered 503 itself): after the bounded look-ups, one more create.
    fronted.on(json_reply({"detail": "unavailable"}, status=503), method="POST", path="/dashboards", times=1)
    operator = PostHogCreateDashboardOperator(task_id="c", name="Never landed", hook_params=HOOK)
    operator.lost_create_waits = (0.05, 0.05)
    result = operator.execute({})
    assert [d["id"] for d in _named(emulator, "Never landed")] == [result["id"]]
    assert len(_creates(fronted)) == 2
    assert len([r for r in fronted.requests if r.method == "GET"]) == 4


def test_an_airflow_retry_with_create_and_no_state_store_makes_no_second_dashboard(fronted, emulator):
    # 520 after the commit on the first try; the try resolves it by looking up, so an Airflow retry
    # (Airflow < 3.3: no task state store) never happens with the dashboard unaccounted for.
    fronted.on(forward(then=AFTER_COMMIT["520"]), method="POST", path="/dashboards", times=1)
    first = PostHogCreateDashboardOperator(
        task_id="c", name="Retry 520", if_exists="create", hook_params=HOOK
    )
    first.lost_create_waits = (0.05,)
    first.execute({})
    assert len(_named(emulator, "Retry 520")) == 1


@pytest.mark.parametrize("fault", list(AFTER_COMMIT))
def test_one_collaborator_whatever_follows_the_commit(fronted, emulator, fault):
    fronted.on(forward(then=AFTER_COMMIT[fault]), method="POST", path="/collaborators", times=1)
    operator = PostHogAddDashboardCollaboratorOperator(
        task_id="a", dashboard_id=SEED.restricted_dashboard_id, user_uuid=SEED.bob_uuid, hook_params=HOOK
    )
    assert operator.execute({})["user"]["uuid"] == SEED.bob_uuid
    mine = [
        c
        for c in emulator.state.collaborators
        if c["dashboard_id"] == SEED.restricted_dashboard_id and c["user_uuid"] == SEED.bob_uuid
    ]
    assert len(mine) == 1
    assert len(_creates(fronted)) == 1


def test_a_lost_add_found_late_counts_as_success(fronted, emulator):
    # The add commits but its answer is lost; the look-up reads a stale (empty) list, so the add is
    # sent again and PostHog answers "already a collaborator": that is the lost add, a success.
    fronted.on(forward(then=close()), method="POST", path="/collaborators", times=1)
    fronted.on(json_reply([]), method="GET", path="/collaborators", times=1)
    operator = PostHogAddDashboardCollaboratorOperator(
        task_id="a", dashboard_id=SEED.restricted_dashboard_id, user_uuid=SEED.bob_uuid, hook_params=HOOK
    )
    assert operator.execute({})["user"]["uuid"] == SEED.bob_uuid
    mine = [c for c in emulator.state.collaborators if c["user_uuid"] == SEED.bob_uuid]
    assert len(mine) == 1
    assert len(_creates(fronted)) == 2


@pytest.mark.parametrize("fault", ["lost", "500", "524", "non-JSON 201"])
def test_one_backfill_whatever_follows_the_commit(fronted, emulator, fault):
    """Issue 12: a 502-like answer after PostHog started the backfill is looked up, not re-sent."""
    emulator.state.set_run_outcome(HOURLY, "completed", duration=0.2)
    fronted.on(forward(then=AFTER_COMMIT[fault]), method="POST", path="/backfills", times=1)
    operator = backfill_op(task_id="b", start_at=hours_ago(9), end_at=hours_ago(8), hook_params=HOOK)
    result = operator.execute({})
    assert result["status"] == "Completed"
    assert list(emulator.state.backfills) == [result["backfill_id"]]
    assert len(_creates(fronted)) == 1
