"""Shared pieces of the runs and backfills tests: quick runs, a context with XCom, time helpers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.operators.batch_exports import PostHogBackfillBatchExportOperator
from tests.helpers.emulator import FAST
from tests.helpers.sensor_modes import FakeStateStore, FakeTI

HOURLY = SEED.s3_export_id  # an hourly AwsS3 export with three completed runs before this hour


class XComTI(FakeTI):
    """``context["ti"]`` with ``xcom_push``, recording what the task pushed."""

    def __init__(self, start_date: datetime | None = None) -> None:
        super().__init__(start_date or datetime.now(timezone.utc))
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def task_context(store: FakeStateStore | None = None) -> dict[str, Any]:
    ti = XComTI()
    context: dict[str, Any] = {"ti": ti, "task_instance": ti}
    if store is not None:
        context["task_state_store"] = store
    return context


def this_hour() -> datetime:
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def hours_ago(n: int) -> datetime:
    """The start of the hour ``n`` hours before this one: old enough to have no seeded run."""
    return this_hour() - timedelta(hours=n)


def backfill_op(**kwargs: Any) -> PostHogBackfillBatchExportOperator:
    """A backfill of the hourly export, 8 to 6 hours ago, polled every 0.1 s with fast hook retries."""
    kwargs.setdefault("task_id", "backfill")
    kwargs.setdefault("batch_export_id", HOURLY)
    kwargs.setdefault("start_at", hours_ago(8))
    kwargs.setdefault("end_at", hours_ago(6))
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("hook_params", FAST["hook_params"])
    return PostHogBackfillBatchExportOperator(**kwargs)


@pytest.fixture
def quick_runs(emulator, posthog_conn):
    """Runs of the hourly export finish half a second after they start."""
    emulator.state.set_run_outcome(HOURLY, "completed", duration=0.5)
    return emulator
