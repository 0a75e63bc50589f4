"""Injected faults, the request log, keep-alive, the /_emulator/ control endpoints and the CLI."""

from __future__ import annotations

import re
import time

import pytest
import requests
from phenv_emulator import SEED

from tests.helpers.emulator import emulator_cli

PAUSE = f"batch_exports/{SEED.s3_export_id}/pause/"


def test_status_fault_429_with_retry_after_applies_once(api, emulator, expect_error):
    emulator.faults.add("status", status=429, retry_after=3, method="POST", path="/pause")
    assert api.get("batch_exports/").status_code == 200  # other requests are unaffected
    throttled = api.post(PAUSE)
    expect_error(
        throttled,
        429,
        "throttled_error",
        "throttled",
        "Request was throttled. Expected available in 3 seconds.",
    )
    assert throttled.headers["Retry-After"] == "3"
    assert emulator.state.get_batch_export(SEED.s3_export_id)["paused"] is False
    assert api.post(PAUSE).status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503])
def test_status_fault_5xx_is_a_server_error_envelope(api, emulator, expect_error, status):
    emulator.faults.add("status", status=status, times=2)
    for _ in range(2):
        expect_error(api.get("dashboards/"), status, "server_error", "error", "A server error occurred.")
    assert api.get("dashboards/").status_code == 200


def test_html_fault_is_a_proxy_error_page(api, emulator):
    emulator.faults.add("html")
    response = api.get("dashboards/")
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "text/html"
    assert "<h1>502 Bad Gateway</h1>" in response.text


@pytest.mark.parametrize(
    ("kind", "match", "committed"),
    [
        pytest.param("drop", {"path": "/pause"}, False, id="drop-closes-before-anything-is-committed"),
        pytest.param("lost_response", {"method": "POST"}, True, id="lost_response-commits-the-write"),
    ],
)
def test_a_closed_connection_commits_only_what_was_handled(api, emulator, kind, match, committed):
    emulator.faults.add(kind, **match)
    with pytest.raises(requests.ConnectionError):
        api.post(PAUSE)
    assert emulator.state.get_batch_export(SEED.s3_export_id)["paused"] is committed
    assert emulator.requests[-1].status is None
    assert api.post(PAUSE).json() == {"paused": True}  # the retry sees the committed state, or commits


def test_slow_fault_delays_then_answers(api, emulator):
    emulator.faults.add("slow", delay=0.2)
    started = time.perf_counter()
    assert api.get("dashboards/").status_code == 200
    assert time.perf_counter() - started >= 0.2
    assert emulator.requests[-1].duration >= 0.2


def test_fault_arguments_are_checked(emulator):
    for kwargs in ({"kind": "explode"}, {"kind": "status"}, {"kind": "slow"}, {"kind": "drop", "times": 0}):
        with pytest.raises(ValueError):
            emulator.faults.add(**kwargs)


def test_keep_alive_reuses_one_connection_until_it_is_dropped(api, emulator, make_api):
    for _ in range(3):
        api.get("dashboards/")
    make_api().get("dashboards/")  # a second session opens its own connection
    ids = [record.connection_id for record in emulator.requests]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    emulator.faults.add("drop")
    with pytest.raises(requests.ConnectionError):
        api.get("dashboards/")
    api.get("dashboards/")
    assert emulator.requests[-1].connection_id not in ids


def test_request_log_records_without_the_key(api, emulator, make_api):
    response = api.post(PAUSE, params={"verbose": "1"}, headers={"User-Agent": "phenv-test/1.0"})
    make_api(None).get("batch_exports/", params={"personal_api_key": emulator.api_key})
    paused, anonymous = emulator.requests
    assert (paused.method, paused.path, paused.query, paused.body) == (
        "POST",
        "/api/projects/1/" + PAUSE,
        {"verbose": ["1"]},
        None,
    )
    assert (paused.status, paused.user_agent, paused.response_bytes) == (
        200,
        "phenv-test/1.0",
        len(response.content),
    )
    assert paused.started_at <= time.time() and paused.duration >= 0
    assert anonymous.query == {"personal_api_key": ["[redacted]"]}
    assert emulator.api_key not in repr(emulator.requests)
    emulator.clear_requests()
    assert emulator.requests == []


def test_control_endpoints(emulator, api):
    control = f"{emulator.url}/_emulator"
    assert (
        requests.post(
            f"{control}/faults", json={"kind": "status", "status": 503, "path": "/dashboards"}, timeout=5
        ).status_code
        == 201
    )
    assert api.get("dashboards/").status_code == 503
    api.post(PAUSE)
    records = requests.get(f"{control}/requests", timeout=5).json()
    assert [(r["path"], r["status"]) for r in records] == [
        ("/api/projects/1/dashboards/", 503),
        ("/api/projects/1/" + PAUSE, 200),
    ]
    summary = requests.get(f"{control}/state", timeout=5).json()
    [s3] = [e for e in summary["batch_exports"] if e["id"] == SEED.s3_export_id]
    assert s3["paused"] is True
    assert {d["id"] for d in summary["dashboards"]} >= {SEED.web_dashboard_id, SEED.restricted_dashboard_id}
    assert summary["collaborators"] == [
        {"dashboard_id": SEED.restricted_dashboard_id, "user_uuid": SEED.alice_uuid, "level": 37}
    ]
    entry = {"timestamp": "2024-02-01T00:00:00Z", "level": "warning", "message": "from the control API"}
    assert requests.post(f"{control}/log_entries/{SEED.s3_export_id}", json=[entry], timeout=5).json() == {
        "added": 1
    }
    logs = api.get(f"batch_exports/{SEED.s3_export_id}/logs/", params={"level": "WARNING"}).json()["results"]
    assert [e["message"] for e in logs] == ["from the control API"]
    assert (
        requests.post(
            f"{control}/run_outcome/{SEED.s3_export_id}", json={"outcome": "failed"}, timeout=5
        ).status_code
        == 204
    )
    assert requests.delete(f"{control}/requests", timeout=5).status_code == 204
    assert emulator.requests == []
    assert requests.post(f"{control}/reset", timeout=5).status_code == 204
    assert emulator.state.get_batch_export(SEED.s3_export_id)["paused"] is False
    assert requests.get(f"{control}/nothing", timeout=5).status_code == 404
    assert requests.post(f"{control}/faults", json={"kind": "explode"}, timeout=5).status_code == 400
    assert requests.post(f"{control}/log_entries/nope", json=[], timeout=5).status_code == 404
    assert emulator.requests == []  # control calls are never recorded


def test_cli_prints_its_address_and_serves_until_terminated():
    with emulator_cli() as process:
        line = process.stdout.readline()
        match = re.match(
            r"^PostHog emulator listening on (\S+)  api_key=(\S+)  project_id=(\d+)$", line.strip()
        )
        assert match, line
        url, key, project_id = match.groups()
        assert (key, int(project_id)) == (SEED.api_key, SEED.project_id)
        assert SEED.s3_export_id in process.stdout.readline()
        response = requests.get(
            f"{url}/api/environments/{project_id}/batch_exports/",
            headers={"Authorization": f"Bearer {key}"},
            timeout=5,
        )
        assert response.status_code == 200
        assert response.json()["count"] == 6
