"""Batch export logs, from PostHog's ``products/batch_exports/backend/tests/api/test_logs.py`` and the
``LogEntryMixin`` tests in ``posthog/api/test/test_log_entries.py`` (the mixin batch exports share
with hog functions, so its parameters and entry shape are the same)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from phenv_emulator import SEED

from tests.conformance.payloads import export_body
from tests.helpers.conformance import posthog_case

BATCH_EXPORT_LOGS = "products/batch_exports/backend/tests/api/test_logs.py"
LOG_ENTRIES = "posthog/api/test/test_log_entries.py"
LOGS = "batch_exports/{id}/logs/"


@pytest.fixture
def export_id(api) -> str:
    """A new export: no runs, so no log entries of its own."""
    response = api.post("batch_exports/", export_body())
    assert response.status_code == 201, response.text
    return response.json()["id"]


def add_entries(emulator, export_id: str, *entries: tuple[str, str]) -> None:
    """``(level, instance_id)`` entries a minute apart, oldest first, settled long ago."""
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    emulator.state.add_log_entries(
        export_id,
        [
            {
                "timestamp": start + timedelta(minutes=number),
                "level": level,
                "instance_id": instance_id,
                "message": f"Test log. Much {level}.",
            }
            for number, (level, instance_id) in enumerate(entries)
        ],
    )


@posthog_case(f"{BATCH_EXPORT_LOGS}::test_log_entries_with_scoped_personal_api_key", endpoint=LOGS)
@pytest.mark.parametrize(
    ("route", "scopes", "status"),
    [
        ("export", ["batch_export:read"], 200),
        ("export", ["feature_flag:read"], 403),
        ("run", ["feature_flag:read"], 403),
    ],
)
def test_logs_need_the_batch_export_read_scope(emulator, make_api, route, scopes, status):
    path = f"batch_exports/{SEED.s3_export_id}"
    if route == "run":
        run = emulator.state.runs_of(SEED.s3_export_id)[0]
        path += f"/runs/{run['id']}"
    assert make_api(emulator.state.add_api_key(scopes)).get(f"{path}/logs").status_code == status


@posthog_case(f"{LOG_ENTRIES}::test_returns_default", endpoint=LOGS)
def test_logs_of_an_export_without_entries_are_an_empty_page(api, export_id):
    response = api.get(f"batch_exports/{export_id}/logs/")
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


@posthog_case(f"{LOG_ENTRIES}::test_returns_log_entries", endpoint=LOGS)
def test_a_log_entry_has_the_log_entry_fields(api, emulator, export_id):
    emulator.state.add_log_entries(
        export_id,
        [
            {
                "timestamp": "2023-09-22 01:00:00",
                "level": "info",
                "instance_id": "instance-id-1",
                "message": "Test log. Much info.",
            }
        ],
    )
    assert api.get(f"batch_exports/{export_id}/logs/").json()["results"] == [
        {
            "log_source_id": export_id,
            "instance_id": "instance-id-1",
            "timestamp": "2023-09-22T01:00:00Z",
            "level": "INFO",
            "message": "Test log. Much info.",
        }
    ]


@posthog_case(f"{LOG_ENTRIES}::test_filters_log_entries_by_level", endpoint=LOGS)
def test_level_is_a_comma_list_of_any_case(api, emulator, export_id):
    add_entries(
        emulator, export_id, *[(level, "instance-id-1") for level in ("info", "error", "info", "warn")]
    )
    results = api.get(f"batch_exports/{export_id}/logs/", params={"level": "info,WARN"}).json()["results"]
    assert [entry["level"] for entry in results] == ["WARN", "INFO", "INFO"]


@posthog_case(f"{LOG_ENTRIES}::test_filters_log_entries_by_instance_id", endpoint=LOGS)
def test_instance_id_filters_the_entries(api, emulator, export_id):
    add_entries(
        emulator,
        export_id,
        ("info", "instance-id-1"),
        ("error", "instance-id-2"),
        ("error", "instance-id-1"),
        ("error", "instance-id-2"),
    )
    results = api.get(f"batch_exports/{export_id}/logs/", params={"instance_id": "instance-id-1"}).json()
    assert [(entry["instance_id"], entry["level"]) for entry in results["results"]] == [
        ("instance-id-1", "ERROR"),
        ("instance-id-1", "INFO"),
    ]
