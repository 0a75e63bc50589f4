"""Reading every page: dashboards by following ``next``, logs backwards with ``before=``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.hooks.posthog import PostHogHook
from tests.helpers.emulator import api_requests

START = datetime(2025, 1, 1, tzinfo=timezone.utc)  # long before the seeded history
END = START + timedelta(days=1)


@pytest.fixture
def hook(posthog_conn):
    with PostHogHook() as hook:
        yield hook


def _add_dashboards(emulator, count):
    for number in range(count):
        emulator.state.add_dashboard(f"Generated {number:04d}")


def test_dashboards_follow_next_through_every_page(hook, emulator):
    _add_dashboards(emulator, 250)
    seeded = len(hook.list_dashboards())
    emulator.clear_requests()
    dashboards = hook.list_dashboards(page_size=100)
    assert len(dashboards) == seeded
    assert len({d["id"] for d in dashboards}) == seeded
    assert sum(d["name"].startswith("Generated ") for d in dashboards) == 250
    sent = api_requests(emulator)
    assert len(sent) == -(-seeded // 100)
    assert len({r.connection_id for r in sent}) == 1
    assert sent[1].query["offset"] == ["100"]


def test_next_link_is_kept_on_the_configured_host(hook, emulator):
    _add_dashboards(emulator, 3)
    emulator.clear_requests()
    hook.list_dashboards(page_size=2)
    # The emulator's next links point at /api/projects/ as PostHog's do; the host stays ours.
    assert [r.path for r in api_requests(emulator)][1].startswith("/api/projects/1/dashboards")


def _entries(count, *, start=START, per_timestamp=1, message="entry"):
    return [
        {
            "timestamp": start + timedelta(milliseconds=number // per_timestamp),
            "level": "INFO",
            "message": f"{message} {number}",
            "instance_id": "run-1",
        }
        for number in range(count)
    ]


def test_logs_read_backwards_through_1200_entries(hook, emulator):
    emulator.state.add_log_entries(SEED.s3_export_id, _entries(1200))
    read = list(
        hook.iter_batch_export_logs(SEED.s3_export_id, after=START - timedelta(seconds=1), before=END)
    )
    assert len(read) == 1200
    assert {entry["message"] for entry in read} == {f"entry {n}" for n in range(1200)}
    assert read[0]["message"] == "entry 1199"  # newest first
    sent = api_requests(emulator)
    assert len(sent) == 3
    assert len({r.connection_id for r in sent}) == 1


def test_logs_sharing_timestamps_across_page_edges_are_read_once(hook, emulator):
    # 7 entries per millisecond: page edges (every 500) fall inside groups of equal timestamps.
    emulator.state.add_log_entries(SEED.s3_export_id, _entries(1400, per_timestamp=7))
    read = [
        entry["message"] for entry in hook.iter_batch_export_logs(SEED.s3_export_id, after=START, before=END)
    ]
    first_ms = {f"entry {n}" for n in range(7)}  # exactly at START: not strictly after it
    assert sorted(read) == sorted({f"entry {n}" for n in range(1400)} - first_ms)
    assert len(read) == len(set(read))


def test_logs_after_is_exclusive_and_filters_apply(hook, emulator):
    emulator.state.add_log_entries(SEED.s3_export_id, _entries(5, message="boundary"))
    read = list(hook.iter_batch_export_logs(SEED.s3_export_id, after=START, before=END, search="BOUNDARY"))
    assert sorted(entry["message"] for entry in read) == [f"boundary {n}" for n in range(1, 5)]
