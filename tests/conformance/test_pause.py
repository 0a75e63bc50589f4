"""
Conformance cases for ``batch_exports/{id}/pause/`` and ``unpause/`` from PostHog's
``products/batch_exports/backend/tests/api/test_pause.py`` (docs/posthog-api.md §6.4, §6.5).

PostHog's tests read the Temporal schedule's state too; here the export's ``paused`` field stands
for it, and a deleted schedule is the store's ``delete_schedule``.
"""

from __future__ import annotations

import pytest
from phenv_emulator import SEED

from tests.helpers.conformance import posthog_case
from tests.helpers.processes import wait_for

PAUSE_TESTS = "products/batch_exports/backend/tests/api/test_pause.py"
PAUSE = "batch_exports/{id}/pause/"
UNPAUSE = "batch_exports/{id}/unpause/"
EXPORT = SEED.s3_export_id


@pytest.fixture
def export(emulator) -> str:
    """A new hourly export, unpaused, as PostHog's tests create one."""
    seeded = emulator.state.get_batch_export(EXPORT)
    return emulator.state.add_batch_export("my-production-s3-bucket-destination", seeded["destination"])["id"]


def _paused(api, export: str) -> bool:
    return bool(api.get(f"batch_exports/{export}").json()["paused"])


@posthog_case(f"{PAUSE_TESTS}::test_pause_and_unpause_batch_export", endpoint=PAUSE)
def test_pause_and_unpause_batch_export(api, export):
    assert _paused(api, export) is False
    assert api.post(f"batch_exports/{export}/pause").status_code == 200
    assert _paused(api, export) is True
    assert api.post(f"batch_exports/{export}/unpause", {"backfill": False}).status_code == 200
    assert _paused(api, export) is False


@pytest.mark.parametrize(
    ("outsider", "status"),
    [
        pytest.param(
            lambda emulator, make_api: make_api(emulator.state.add_api_key(["*"], SEED.carol_uuid)),
            403,
            marks=posthog_case(
                f"{PAUSE_TESTS}::test_cannot_pause_and_unpause_batch_exports_of_other_organizations",
                endpoint=PAUSE,
            ),
            id="other_organizations",
        ),
        pytest.param(
            lambda emulator, make_api: make_api(team=SEED.second_environment_id),
            404,
            marks=posthog_case(
                f"{PAUSE_TESTS}::test_pause_and_unpause_are_partitioned_by_team_id", endpoint=UNPAUSE
            ),
            id="partitioned_by_team_id",
        ),
    ],
)
def test_an_outsider_can_neither_pause_nor_unpause(api, emulator, make_api, export, outsider, status):
    other = outsider(emulator, make_api)  # a user of another organization, or a path of another team
    assert other.post(f"batch_exports/{export}/pause").status_code == status
    assert _paused(api, export) is False
    assert api.post(f"batch_exports/{export}/pause").status_code == 200
    assert other.post(f"batch_exports/{export}/unpause", {"backfill": False}).status_code == status
    assert _paused(api, export) is True


@posthog_case(f"{PAUSE_TESTS}::test_pause_batch_export_that_is_already_paused", endpoint=PAUSE)
def test_pause_batch_export_that_is_already_paused(api, export):
    created = api.get(f"batch_exports/{export}").json()
    api.post(f"batch_exports/{export}/pause")
    data = api.get(f"batch_exports/{export}").json()
    last_updated_at = data["last_updated_at"]
    assert last_updated_at > created["last_updated_at"]
    assert data["paused"] is True
    api.post(f"batch_exports/{export}/pause")
    assert api.get(f"batch_exports/{export}").json()["last_updated_at"] == last_updated_at


@posthog_case(f"{PAUSE_TESTS}::test_unpause_batch_export_that_is_already_unpaused", endpoint=UNPAUSE)
def test_unpause_batch_export_that_is_already_unpaused(api, export):
    last_updated_at = api.get(f"batch_exports/{export}").json()["last_updated_at"]
    assert api.post(f"batch_exports/{export}/unpause", {"backfill": False}).status_code == 200
    assert api.get(f"batch_exports/{export}").json()["last_updated_at"] == last_updated_at


@posthog_case(f"{PAUSE_TESTS}::test_pause_non_existent_batch_export", endpoint=PAUSE)
def test_pause_non_existent_batch_export(api, emulator, export):
    emulator.state.delete_schedule(export)
    assert api.post(f"batch_exports/{export}/pause").status_code == 400


@posthog_case(f"{PAUSE_TESTS}::test_unpause_can_trigger_a_backfill", endpoint=UNPAUSE)
def test_unpause_can_trigger_a_backfill(api, emulator, export):
    emulator.state.set_switches(backfill_row_delay=0.2)  # the workflow creates the row
    created = api.get(f"batch_exports/{export}").json()
    api.post(f"batch_exports/{export}/pause")
    assert api.post(f"batch_exports/{export}/unpause", {"backfill": True}).status_code == 200
    data = api.get(f"batch_exports/{export}").json()
    assert created["last_updated_at"] < data["last_updated_at"]

    def row():
        return api.get(f"batch_exports/{export}/backfills/").json()["results"]

    # backfill_export(start_at=last_paused_at, end_at=last_updated_at), as PostHog's mock asserts.
    [backfill] = wait_for("the backfill row", row, timeout=5, interval=0.05)
    assert (backfill["start_at"], backfill["end_at"]) == (data["last_paused_at"], data["last_updated_at"])
