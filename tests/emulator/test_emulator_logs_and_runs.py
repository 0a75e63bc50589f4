"""Logs, runs written over time, and backfills (docs/posthog-api.md §11 items 26-29, 35-38).

These tests want log entries visible exactly at their timestamps; the out-of-order default
(§6.3) has its own tests in test_emulator_fidelity.py.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from phenv_emulator import SEED

from tests.helpers.processes import wait_for

EXPORT = SEED.s3_export_id
LOGS = f"batch_exports/{EXPORT}/logs/"
T0 = datetime(2024, 1, 15, 10, 0, tzinfo=timezone.utc)
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


# Backfill rows at once, unless a test is about their delay (docs/posthog-api.md §6.9).
pytestmark = pytest.mark.usefixtures("prompt_backfills")


@pytest.fixture(autouse=True)
def in_order(emulator):
    """Entries visible at their timestamps (no out-of-order delay)."""
    emulator.state.set_switches(log_delay=0)


@pytest.fixture
def entries(emulator):
    """Five entries one second apart from T0, in a fresh export, across two runs."""
    levels = ["INFO", "warning", "ERROR", "info", "Debug"]
    emulator.state.add_log_entries(
        EXPORT,
        [
            {
                "timestamp": T0 + timedelta(seconds=i),
                "level": level,
                "message": f"Message {i} about Bucket",
                "instance_id": "run-a" if i < 3 else "run-b",
            }
            for i, level in enumerate(levels)
        ],
    )
    return T0


def messages(response):
    return [entry["message"] for entry in response.json()["results"]]


def window(**params):
    return {
        "after": (T0 - timedelta(seconds=1)).isoformat(),
        "before": (T0 + timedelta(seconds=10)).isoformat(),
        **params,
    }


def test_logs_shape_and_order(api, entries):  # 26
    response = api.get(LOGS, params=window())
    page = response.json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert (page["count"], page["next"], page["previous"]) == (5, None, None)
    assert messages(response) == [f"Message {i} about Bucket" for i in (4, 3, 2, 1, 0)]
    first = page["results"][0]
    assert set(first) == {"log_source_id", "instance_id", "timestamp", "level", "message"}
    assert (first["log_source_id"], first["instance_id"], first["level"]) == (EXPORT, "run-b", "DEBUG")
    assert first["timestamp"] == "2024-01-15T10:00:04Z"  # isoformat(): no zero fraction (§6.3)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"after": "2024-01-15T10:00:01Z"}, [4, 3, 2]),  # exclusive
        ({"before": "2024-01-15T10:00:02+00:00"}, [1, 0]),  # exclusive
        ({"level": "error,WARNING"}, [2, 1]),
        ({"level": "info"}, [3, 0]),
        ({"search": "BUCKET"}, [4, 3, 2, 1, 0]),
        ({"search": "message 3"}, [3]),
        ({"instance_id": "run-a"}, [2, 1, 0]),
        ({"limit": 2}, [4, 3]),
    ],
)
def test_logs_filters(api, entries, params, expected):  # 28
    assert messages(api.get(LOGS, params=window(**params))) == [f"Message {i} about Bucket" for i in expected]


@pytest.mark.parametrize(
    ("params", "code", "detail", "attr"),
    [
        ({"limit": 501}, "max_value", "Ensure this value is less than or equal to 500.", "limit"),
        ({"limit": 0}, "min_value", "Ensure this value is greater than or equal to 1.", "limit"),
        ({"limit": "x"}, "invalid_input", "A valid integer is required.", "limit"),
        (
            {"after": "yesterday"},
            "invalid_input",
            "Datetime has wrong format. Use one of these formats instead: "
            "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
            "after",
        ),
    ],
)
def test_logs_parameter_validation(api, expect_error, params, code, detail, attr):  # 27
    expect_error(api.get(LOGS, params=params), 400, "validation_error", code, detail, attr)


def test_run_ids_match_no_log_entry(api):  # §6.3
    run = api.get(f"batch_exports/{EXPORT}/runs/").json()["results"][0]
    assert api.get(f"batch_exports/{EXPORT}/runs/{run['id']}/logs/").json()["results"] == []
    assert api.get(LOGS, params={"instance_id": run["id"]}).json()["results"] == []
    entries = api.get(LOGS).json()["results"]
    assert entries and all(entry["instance_id"] and entry["instance_id"] != run["id"] for entry in entries)


def test_logs_of_unknown_export_is_404_before_validation(api, expect_error):  # 29
    response = api.get(f"batch_exports/{SEED.owner_uuid}/logs/", params={"limit": 9999})
    expect_error(response, 404, "invalid_request", "not_found", "Not found.")


def test_seeded_failing_export_has_error_logs(api):
    errors = api.get(f"batch_exports/{SEED.postgres_export_id}/logs", params={"level": "ERROR"}).json()[
        "results"
    ]
    assert errors
    assert re.match(
        r"^Batch export for range \S+ \S+ - \S+ \S+ failed with a non-recoverable error: OperationalError",
        errors[0]["message"],
    )
    assert all(ISO_Z.match(entry["timestamp"]) for entry in errors)


def test_logs_stay_fast_with_many_entries(api, emulator):
    base = T0 - timedelta(days=1)
    emulator.state.add_log_entries(
        EXPORT,
        [
            {"timestamp": base + timedelta(milliseconds=i), "level": "INFO", "message": f"m{i}"}
            for i in range(20_000)
        ],
    )
    started = time.perf_counter()
    page = api.get(LOGS, params={"limit": 500, "before": (base + timedelta(seconds=10)).isoformat()}).json()
    assert time.perf_counter() - started < 0.5
    assert [entry["message"] for entry in page["results"][:2]] == ["m9999", "m9998"]
    assert page["count"] == 500


def test_unpause_with_backfill_writes_a_run_log_over_time(api, emulator):  # the sensor's scenario
    export = SEED.s3_export_id
    emulator.state.set_run_outcome(export, duration=0.4)
    logs = f"batch_exports/{export}/logs/"
    assert api.post(f"batch_exports/{export}/pause/").status_code == 200
    emulator.state.shift_last_paused_at(export, 3600)  # a pause of one whole interval
    since = datetime.now(timezone.utc).isoformat()
    api.post(f"batch_exports/{export}/unpause/", {"backfill": True})
    [run] = [r for r in api.get(f"batch_exports/{export}/runs/").json()["results"] if r["backfill"]]
    assert run["status"] == "Starting"
    assert not any("finished" in m for m in messages(api.get(logs, params={"after": since})))

    def run_log():
        found = api.get(logs, params={"after": since}).json()["results"]
        return found if len(found) == 2 else None

    entries = wait_for("the run's log lines", run_log, timeout=10, interval=0.05)
    assert [entry["level"] for entry in entries] == ["INFO", "INFO"]
    assert re.match(
        r"^Batch export for range \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00:00 - .+ "
        r"finished successfully with 1000 records exported$",
        entries[0]["message"],
    )
    assert entries[1]["message"].startswith("Batch exporting range ")
    assert "to S3: posthog/events/" in entries[1]["message"]
    assert entries[0]["instance_id"] == entries[1]["instance_id"] != run["id"]
    assert api.get(f"batch_exports/{export}/runs/{run['id']}/").json()["status"] == "Completed"


def test_failing_run_ends_with_an_error_entry_and_a_notification(api, emulator):  # §6.3
    emulator.state.set_run_outcome(EXPORT, "failed", duration=0.1, error_message="NoSuchBucket: gone")
    assert (
        api.post(
            f"batch_exports/{EXPORT}/backfills/",
            {"start_at": "2024-01-01T00:00:00Z", "end_at": "2024-01-01T01:00:00Z"},
        ).status_code
        == 201
    )

    def last_lines():
        newest = api.get(LOGS, params={"limit": 2}).json()["results"]
        return newest if newest[1]["level"] == "ERROR" else None

    notification, error = wait_for("the failed run's error line", last_lines, timeout=10, interval=0.05)
    assert (error["level"], error["message"]) == (
        "ERROR",
        "Batch export for range 2024-01-01 00:00:00+00:00 - 2024-01-01 01:00:00+00:00 failed with a "
        "non-recoverable error: NoSuchBucket: gone",
    )
    run = api.get(f"batch_exports/{EXPORT}/runs/", params={"status": "Failed"}).json()["results"][0]
    assert run["latest_error"] == "NoSuchBucket: gone"
    assert notification == {
        **notification,
        "level": "INFO",
        "message": f"Failure notification email for run '{run['id']}' has been sent",
    }


def test_runs_are_cursor_paginated_and_filtered_by_status(api, emulator, expect_error):  # 35, 36
    page = api.get(f"batch_exports/{EXPORT}/runs/").json()
    assert set(page) == {"next", "previous", "results"}
    assert len(page["results"]) == 3
    assert all(run["status"] == "Completed" for run in page["results"])
    created = [run["created_at"] for run in page["results"]]
    assert created == sorted(created, reverse=True)
    assert (
        api.get(f"batch_exports/{EXPORT}/runs/", params={"status": ["Failed", "Running"]}).json()["results"]
        == []
    )
    expect_error(
        api.get(f"batch_exports/{EXPORT}/runs/", params={"status": "Exploded"}),
        400,
        "validation_error",
        "invalid_choice",
        '"Exploded" is not a valid choice.',
        "status__0",  # a ListField's error names the item
    )


def test_runs_cursor_follows_next(api, emulator):  # 35
    emulator.state.set_run_outcome(EXPORT, duration=0)  # each backfill done at once: no 429
    start = datetime.now(timezone.utc) - timedelta(hours=200)
    for hour in range(101):
        api.post(
            f"batch_exports/{EXPORT}/backfills/",
            {
                "start_at": (start + timedelta(hours=hour)).isoformat(),
                "end_at": (start + timedelta(hours=hour + 1)).isoformat(),
            },
        )
    first = api.get(f"batch_exports/{EXPORT}/runs/").json()
    assert len(first["results"]) == 100
    second = api.session.get(first["next"]).json()
    assert len(second["results"]) == 4  # 101 backfill runs + 3 seeded ones
    assert second["next"] is None and second["previous"]


def test_cancel_only_active_runs(api, emulator, expect_error):  # 37
    completed = api.get(f"batch_exports/{EXPORT}/runs/").json()["results"][0]
    expect_error(
        api.post(f"batch_exports/{EXPORT}/runs/{completed['id']}/cancel"),
        400,
        "validation_error",
        "invalid_input",
        "Cannot cancel a run that is in 'Completed' status",
    )
    emulator.state.set_run_outcome(EXPORT, duration=30)
    retried = api.post(f"batch_exports/{EXPORT}/runs/{completed['id']}/retry/")
    assert retried.status_code == 201
    [active] = api.get(f"batch_exports/{EXPORT}/runs/", params={"status": ["Starting", "Running"]}).json()[
        "results"
    ]
    # The retry's row has a UUID of its own; the answer is the backfill workflow's id.
    assert retried.json()["backfill_id"].startswith(f"{EXPORT}-Backfill-")
    [row] = api.get(f"batch_exports/{EXPORT}/backfills/").json()["results"]
    assert active["backfill"] == row["id"]
    assert active["data_interval_start"] == completed["data_interval_start"]
    assert api.post(f"batch_exports/{EXPORT}/runs/{active['id']}/cancel/").json() == {"cancelled": True}
    assert api.get(f"batch_exports/{EXPORT}/runs/{active['id']}").json()["status"] == "Cancelled"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"start_at": "2024-01-02T00:00:00Z", "end_at": "2024-01-01T00:00:00Z"},
            "The initial backfill datetime 'start_at' must be before 'end_at'",
        ),
        (
            {"start_at": "2024-01-01T00:00:00Z", "end_at": "2999-01-01T00:00:00Z"},
            "The provided 'end_at' (2999-01-01T00:00:00+00:00) is in the future",
        ),
        (
            {"start_at": "2024-01-01T00:00:00", "end_at": "2024-01-02T00:00:00Z"},
            "Input 2024-01-01T00:00:00 is naive.",
        ),
        (
            {"end_at": "2024-01-02T00:00:00Z"},
            "Backfilling from the beginning of time is not enabled for this team.",
        ),
    ],
)
def test_backfill_validation(api, expect_error, body, detail):  # 38
    expect_error(
        api.post(f"batch_exports/{EXPORT}/backfills/", body), 400, "validation_error", "invalid_input", detail
    )


def test_backfill_create_returns_its_id(api):  # 38
    response = api.post(
        f"batch_exports/{EXPORT}/backfills/",
        {"start_at": "2024-01-01T00:00:00Z", "end_at": "2024-01-01T02:00:00Z"},
    )
    assert response.status_code == 201
    backfill_id = response.json()["backfill_id"]
    backfill = api.get(f"batch_exports/{EXPORT}/backfills/{backfill_id}/").json()
    assert backfill["progress"]["total_runs"] == 2  # one run per hour
    assert backfill["start_at"] == "2024-01-01T00:00:00.000000Z"


# -- the runs routes' query, on the list and on one run (§6.9) -----------------------------------


def test_one_run_older_than_seven_days_is_404_unless_after_reaches_it(api, emulator, expect_error):
    old = f"batch_exports/{EXPORT}/runs/{SEED.old_run_id}/"
    for method, path in (("GET", old), ("POST", f"{old}retry/"), ("POST", f"{old}cancel/")):
        expect_error(api.request(method, path), 404, "invalid_request", "not_found", "Not found.")
    assert api.get(old, params={"after": "-10d"}).json()["status"] == "Completed"
    assert api.get(old, params={"after": "-11d", "before": "-10d"}).status_code == 404
    assert api.get(old, params={"ordering": "data_interval_start", "start": "-10d"}).status_code == 200
    expect_error(
        api.post(f"{old}cancel/", params={"after": "-10d"}),
        400,
        "validation_error",
        "invalid_input",
        "Cannot cancel a run that is in 'Completed' status",
    )
    assert api.post(f"{old}retry/", params={"after": "-10d"}).status_code == 201
    assert SEED.old_run_id not in {
        run["id"] for run in api.get(f"batch_exports/{EXPORT}/runs/").json()["results"]
    }


def test_one_run_is_filtered_by_status_too(api):
    run = api.get(f"batch_exports/{EXPORT}/runs/").json()["results"][0]
    path = f"batch_exports/{EXPORT}/runs/{run['id']}/"
    assert api.get(path, params={"status": "Failed"}).status_code == 404
    assert api.get(path, params={"status": ["Failed", "Completed"]}).status_code == 200
    assert api.get(path, params={"status": "Nope"}).status_code == 400


@pytest.mark.parametrize(
    ("after", "count"),
    [("-10d", 4), ("-1y", 4), ("-2w", 4), ("2000-01-01", 4), ("yesterday", 0), ("", 3), ("-1h", 0)],
)
def test_after_is_read_as_relative_date_parse_reads_it(api, after, count):
    # An ISO moment, else the first relative unit found anywhere ("yesterday" has a "d": now).
    runs = api.get(f"batch_exports/{EXPORT}/runs/", params={"after": after}).json()["results"]
    assert len(runs) == count


def test_the_lists_filter_on_the_path_and_the_team_not_on_the_export(api):
    assert api.get(f"batch_exports/{SEED.owner_uuid}/runs/").json()["results"] == []
    assert api.get(f"batch_exports/{SEED.owner_uuid}/backfills/").json()["results"] == []
    assert api.get(f"batch_exports/{SEED.owner_uuid}/runs/{SEED.old_run_id}/").status_code == 404
    api.delete(f"batch_exports/{EXPORT}/")
    assert len(api.get(f"batch_exports/{EXPORT}/runs/").json()["results"]) == 3  # still listed
    # A malformed id fails the UUID lookup of the lists, unhandled; one run is just not found.
    assert api.get("batch_exports/nope/runs/").status_code == 500
    assert api.get("batch_exports/nope/backfills/").status_code == 500
    assert api.get(f"batch_exports/nope/runs/{SEED.old_run_id}/").status_code == 404


def test_runs_ordering_drops_unknown_terms(api):
    runs = api.get(f"batch_exports/{EXPORT}/runs/", params={"ordering": "nonsense,created_at"}).json()
    created = [run["created_at"] for run in runs["results"]]
    assert created == sorted(created)
    assert api.get(f"batch_exports/{EXPORT}/runs/", params={"ordering": "nonsense"}).status_code == 200
