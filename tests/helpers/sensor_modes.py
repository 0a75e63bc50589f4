"""
Helpers for the log sensor and trigger tests: a small stand-in task context, and one runner per
sensor mode that drives the sensor the way Airflow's task runner would, against the emulator.

The stand-ins are not what is tested: ``FakeTI`` has the three attributes the sensor reads and
``FakeStateStore`` behaves like ``context["task_state_store"]`` (Airflow >= 3.3), a JSON store
shared by every poke and try of one task instance.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.compat.sdk import TaskDeferred

try:
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowRescheduleException
from airflow.triggers.base import BaseTrigger, TriggerEvent
from phenv_emulator import SEED

from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportLogsSensor
from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportLogsTrigger

EXPORT_ID = SEED.bigquery_export_id
# Fast retries so fault tests take milliseconds, not the production backoff.
FAST_HOOK = {"backoff": 0.01, "backoff_max": 0.05}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class FakeTI:
    """What the sensor reads from ``context["ti"]``."""

    def __init__(self, start_date: datetime, try_number: int = 1) -> None:
        self.start_date = start_date
        self.try_number = try_number
        self.first_reschedule_date: datetime | None = None

    def get_first_reschedule_date(self, context: Any) -> datetime | None:
        return self.first_reschedule_date


class FakeStateStore:
    """A JSON round-tripping stand-in for Airflow 3.3's ``TaskStateStoreAccessor``."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.data[key]) if key in self.data else default

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.data[key] = json.dumps(value)
        self.writes += 1

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def make_context(ti: FakeTI, store: FakeStateStore | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"ti": ti, "task_instance": ti}
    if store is not None:
        context["task_state_store"] = store
    return context


def fresh(sensor: PostHogBatchExportLogsSensor) -> PostHogBatchExportLogsSensor:
    """A new instance with the same arguments, as each poke/resume runs in a new worker process."""
    return copy.deepcopy(sensor)


def entry(at: datetime, level: str, message: str, instance_id: str = "run-1") -> dict[str, Any]:
    return {"timestamp": at, "level": level, "message": message, "instance_id": instance_id}


async def first_event(trigger: BaseTrigger, timeout: float = 20.0) -> TriggerEvent:
    """The trigger's first event (Airflow takes only one), with the generator closed after it."""
    generator = trigger.run()
    try:
        return await asyncio.wait_for(generator.__anext__(), timeout)
    finally:
        await generator.aclose()


def run_trigger(trigger: BaseTrigger, timeout: float = 20.0) -> TriggerEvent:
    return asyncio.run(first_event(trigger, timeout))


async def cancel_logs_triggers_mid_request(
    server: Any, batch_export_id: str, *, count: int, polls: int, **trigger_kwargs: Any
) -> tuple[int, list[Any], list[asyncio.Task[Any]]]:
    """
    ``count`` logs triggers, each run into its first request to ``server`` (which holds them), all
    cancelled once the server has them all or after ``polls`` checks 0.05 s apart, as the triggerer
    cancels on shutdown. Returns the requests the server had by then, the results of the cancelled
    runs, and the asyncio tasks still alive afterwards.
    """
    triggers = [
        PostHogBatchExportLogsTrigger(
            batch_export_id=batch_export_id,
            since=utcnow().isoformat(),
            criteria={"message_pattern": "x"},
            **trigger_kwargs,
        )
        for _ in range(count)
    ]
    tasks = [asyncio.create_task(trigger.run().__anext__()) for trigger in triggers]
    for _ in range(polls):
        if len(server.requests) >= count:
            break
        await asyncio.sleep(0.05)
    sent = len(server.requests)
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.1)
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    return sent, results, leftover


def run_poke_mode(sensor: PostHogBatchExportLogsSensor, context: dict[str, Any]) -> Any:
    """Poke mode: ``execute`` loops and sleeps in the worker."""
    return sensor.execute(context)


def run_reschedule_mode(sensor: PostHogBatchExportLogsSensor, context: dict[str, Any]) -> Any:
    """Reschedule mode: each poke is a fresh instance; Airflow records the first poke's start."""
    ti = context["ti"]
    first_poke = None
    context["test_run"] = {"reschedules": 0}
    for _ in range(200):
        attempt = fresh(sensor)
        ti.start_date = utcnow()
        first_poke = first_poke or ti.start_date
        try:
            return attempt.execute(context)
        except AirflowRescheduleException as reschedule:
            ti.first_reschedule_date = first_poke
            context["test_run"]["reschedules"] += 1
            time.sleep(max(0.0, (reschedule.reschedule_date - utcnow()).total_seconds()))
    raise AssertionError("the sensor never finished")


def run_deferrable_mode(sensor: PostHogBatchExportLogsSensor, context: dict[str, Any]) -> Any:
    """
    Deferrable mode: the first poke runs in the worker; on ``TaskDeferred`` the trigger runs
    (here in this process) and a fresh instance resumes with its event, as the task runner does.
    """
    context["test_run"] = {"events": []}
    try:
        return sensor.execute(context)
    except TaskDeferred as deferred:
        event = run_trigger(deferred.trigger)
        context["test_run"]["events"].append(event.payload)
        resumed = fresh(sensor)
        return resumed.resume_execution(
            deferred.method_name, {"event": event.payload, **deferred.kwargs}, context
        )


MODES = {
    "poke": run_poke_mode,
    "reschedule": run_reschedule_mode,
    "deferrable": run_deferrable_mode,
}


def sensor_for_mode(mode: str, **kwargs: Any) -> PostHogBatchExportLogsSensor:
    kwargs.setdefault("task_id", f"wait_{mode}")
    kwargs.setdefault("batch_export_id", EXPORT_ID)
    kwargs.setdefault("poke_interval", 0.2)
    kwargs.setdefault("timeout", 20)
    kwargs.setdefault("hook_params", FAST_HOOK)
    return PostHogBatchExportLogsSensor(
        mode="reschedule" if mode == "reschedule" else "poke", deferrable=mode == "deferrable", **kwargs
    )


def seconds_after(base: datetime, seconds: float) -> datetime:
    return base + timedelta(seconds=seconds)
