"""
Item 8: waiting for a backfill and for an exported interval, next to HttpSensor doing the same.

The hourly AwsS3 export of the seed gets a week of hourly runs behind it (``history`` runs in all,
as PostHog keeps them), then:

1. **Idle polls.** A backfill of one hour whose run takes an hour, and a run of the hour that just
   ended, running for an hour: what one poll costs while nothing changes. Ours: the backfill wait's
   poll in the worker (``RunsWait.poll``, what ``wait_for_backfill`` calls between its sleeps) and
   ``PostHogBatchExportRunTrigger(backfill_id=...)``; the run sensor's ``poke`` and the trigger
   with ``since``/``until``. HTTP provider: ``HttpSensor.poke`` on ``backfills/{id}/`` and on
   ``runs/`` (PostHog's default listing) with a ``response_check``.
2. **Latency and worker slots.** Each wait runs to its end in this process, driven as the task
   runner would (poke: ``execute``; reschedule: a fresh instance per poke; deferrable: ``execute``
   until ``TaskDeferred``, the trigger in ``asyncio.run``, ``resume_execution`` on a fresh
   instance). The run ends ``poll_interval * (1 + phase)`` after it started, the phases spread
   evenly over the poll cycle as in item 5. Latency is from the run's ``finished_at`` (the
   emulator's end time) to the task's return. Worker slots: the spans of task code in the stand-in
   worker (``execute``, each rescheduled poke, the resume; the trigger runs outside any) and the
   time-weighted number of them held from half an interval after the start to the run's end.
"""

from __future__ import annotations

import asyncio
import copy
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.providers.http.sensors.http import HttpSensor

try:
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowRescheduleException

from phenv_emulator import SEED

from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.operators.batch_exports import PostHogBackfillBatchExportOperator
from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportRunSensor
from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportRunTrigger
from airflow_provider_phenv.validation import format_timestamp, parse_timestamp
from airflow_provider_phenv.waits import WAITING
from airflow_provider_phenv.waits.runs import RunsWait
from benchmarks.harness import (
    HTTP_CONN_ID,
    Bench,
    Figure,
    Traffic,
    idle_trigger_polls,
    latency_figure,
    traffic,
    utcnow,
)
from tests.helpers.sensor_modes import FakeStateStore, FakeTI, first_event, make_context

EXPORT = SEED.s3_export_id  # hourly, three completed runs before the last hour in the seed
HOUR = timedelta(hours=1)
# Hook retries in milliseconds, so a hiccup cannot add seconds to a latency sample.
FAST_HOOK = {"backoff": 0.01, "backoff_max": 0.05}


def this_hour() -> datetime:
    return utcnow().replace(minute=0, second=0, microsecond=0)


def prepare(bench: Bench, history: int) -> datetime:
    """
    Reset the emulator and give the export ``history`` hourly runs in all (the seed's three, and
    older ones), each created a minute after its interval ended. Returns the current hour.
    """
    bench.reset()
    hour = this_hour()
    seeded = 3  # the seed's runs end one hour before the current hour
    oldest_seeded = hour - HOUR * (1 + seeded)
    for k in range(max(0, history - seeded)):
        end = oldest_seeded - HOUR * k
        bench.emulator.state.start_run(EXPORT, end - HOUR, end, created_at=end + timedelta(minutes=1))
    return hour


def backfill_range(hour: datetime) -> tuple[datetime, datetime]:
    """One past hour to re-export."""
    return hour - 10 * HOUR, hour - 9 * HOUR


def http_backfill_done(response: Any) -> bool:
    return bool(response.json().get("status") == "Completed")


def http_interval_done(since: datetime, until: datetime) -> Callable[[Any], bool]:
    """A DAG author's check of ``runs/``: a completed run covers ``[since, until)``."""

    def check(response: Any) -> bool:
        return any(
            run.get("status") == "Completed"
            and parse_timestamp("start", run["data_interval_start"]) <= since
            and parse_timestamp("end", run["data_interval_end"]) >= until
            for run in response.json()["results"]
        )

    return check


def http_sensor(bench: Bench, tail: str, check: Callable[[Any], bool], **kwargs: Any) -> HttpSensor:
    return HttpSensor(
        task_id=f"http_{tail.strip('/').replace('/', '_')[:40]}",
        http_conn_id=HTTP_CONN_ID,
        endpoint=f"{bench.api}/batch_exports/{EXPORT}/{tail}",
        response_check=check,
        **kwargs,
    )


def trigger_traffic(bench: Bench, trigger: Any, polls: int, interval: float) -> list[Traffic]:
    """Run ``trigger`` for ``polls`` intervals; the traffic of each of its polls."""
    return [traffic(group) for group in idle_trigger_polls(bench, trigger, polls, interval)]


# -- 1. idle polls ----------------------------------------------------------------------------------


def idle_polls(bench: Bench, history: int, polls: int) -> dict[str, Any]:
    """What a poll costs while the backfill and the run are still running."""
    interval = 0.2  # the trigger's, so its polls take a second
    hour = prepare(bench, history)
    state = bench.emulator.state
    state.set_run_outcome(EXPORT, "completed", duration=3600)
    context = make_context(FakeTI(utcnow()), FakeStateStore())
    start, end = backfill_range(hour)
    with PostHogHook() as hook:
        backfill_id = hook.create_batch_export_backfill(EXPORT, start_at=start, end_at=end)["backfill_id"]
        hook.get_batch_export_backfill(EXPORT, backfill_id, row_timeout=30)  # its row shows late
        wait = RunsWait(EXPORT, backfill_id=backfill_id, started_at=utcnow())
        outcomes: list[Any] = []
        backfill_worker = bench.measure(lambda: outcomes.extend(wait.poll(hook, None) for _ in range(polls)))
    backfill_trigger = trigger_traffic(
        bench,
        PostHogBatchExportRunTrigger(batch_export_id=EXPORT, backfill_id=backfill_id, poll_interval=interval),
        polls,
        interval,
    )
    sensor = http_sensor(bench, f"backfills/{backfill_id}/", http_backfill_done, poke_interval=1)
    backfill_http = bench.measure(lambda: [sensor.poke(context) for _ in range(polls)])

    # The run of the hour that just ended, as a downstream task scheduled at its end waits for it
    # (on a fresh history: the backfill's run above would be in the answer too).
    hour = prepare(bench, history)
    state.set_run_outcome(EXPORT, "completed", duration=3600)
    since, until = hour - HOUR, hour
    state.start_run(EXPORT, since, until)
    run_sensor = PostHogBatchExportRunSensor(
        task_id="exported", batch_export_id=EXPORT, since=since, until=until, poke_interval=1
    )
    pokes: list[Any] = []
    run_first = bench.measure(lambda: pokes.append(run_sensor.poke(context)))
    run_poke = bench.measure(lambda: pokes.extend(run_sensor.poke(context) for _ in range(polls)))
    if any(pokes) or any(outcome.status != WAITING for outcome in outcomes):
        raise RuntimeError("a wait ended: these polls were not idle")
    runs_answer = run_sensor.hook.list_batch_export_runs(EXPORT, after=since - timedelta(minutes=5))
    run_sensor.hook.close()
    run_trigger = trigger_traffic(
        bench,
        PostHogBatchExportRunTrigger(
            batch_export_id=EXPORT,
            since=format_timestamp(since),
            until=format_timestamp(until),
            poll_interval=interval,
        ),
        polls,
        interval,
    )
    sensor = http_sensor(bench, "runs/", http_interval_done(since, until), poke_interval=1)
    run_http = bench.measure(lambda: [sensor.poke(context) for _ in range(polls)])
    with PostHogHook() as hook:
        listed = len(hook.list_batch_export_runs(EXPORT))  # PostHog's default: the last 7 days
    return {
        "polls": polls,
        "history_runs": history,
        "runs_in_last_7_days": listed,
        "runs_in_run_sensor_answer": len(runs_answer),
        "backfill_worker": backfill_worker.to_json(),
        "backfill_trigger": [t.to_json() for t in backfill_trigger],
        "backfill_http_sensor": backfill_http.to_json(),
        "run_sensor_first_poke": run_first.to_json(),
        "run_sensor_pokes": run_poke.to_json(),
        "run_trigger": [t.to_json() for t in run_trigger],
        "run_http_sensor": run_http.to_json(),
    }


# -- 2. latency and worker slots --------------------------------------------------------------------


@dataclass
class Worker:
    """The stand-in worker: when task code held a slot, as ``(start, end)`` wall-clock spans."""

    spans: list[tuple[float, float]] = field(default_factory=list)

    @contextmanager
    def slot(self) -> Iterator[None]:
        started = time.time()
        try:
            yield
        finally:
            self.spans.append((started, time.time()))

    def held(self, start: float, end: float) -> float:
        """Time-weighted mean number of slots held over ``[start, end]``."""
        if end <= start:
            return float("nan")
        overlap = sum(max(0.0, min(e, end) - max(s, start)) for s, e in self.spans)
        return overlap / (end - start)

    def busy(self) -> float:
        return sum(e - s for s, e in self.spans)


def drive(task: Any, context: dict[str, Any], mode: str, worker: Worker) -> Any:
    """Run an operator or sensor as the task runner would in ``mode``, its task code in ``worker``."""
    pristine = copy.deepcopy(task)  # each reschedule and the resume run in a new process
    if mode == "reschedule":
        ti = context["ti"]
        first_poke = None
        for _ in range(1000):
            attempt = copy.deepcopy(pristine)
            ti.start_date = utcnow()
            first_poke = first_poke or ti.start_date
            try:
                with worker.slot():
                    return attempt.execute(context)
            except AirflowRescheduleException as reschedule:
                ti.first_reschedule_date = first_poke
                time.sleep(max(0.0, (reschedule.reschedule_date - utcnow()).total_seconds()))
        raise RuntimeError("the rescheduled sensor never finished")
    try:
        with worker.slot():
            return task.execute(context)
    except TaskDeferred as deferred:
        event = asyncio.run(first_event(deferred.trigger, timeout=120))  # the triggerer: no slot
        with worker.slot():
            return copy.deepcopy(pristine).resume_execution(
                deferred.method_name, {"event": event.payload, **(deferred.kwargs or {})}, context
            )


@dataclass
class Sample:
    latency: float  # run finished -> task returned
    after_poll: float  # the deciding poll's first request -> task returned
    held: float  # time-weighted worker slots from half an interval in to the run's end
    busy: float  # seconds of task code in the worker
    wait: float  # seconds from the start of the wait to the task's return
    requests: int
    first_span_requests: int  # requests of the first stint in the worker (execute, to its return or deferral)


def one_wait(bench: Bench, case: str, interval: float, phase: float, history: int) -> Sample:
    """One wait to its end: ``case`` is ``"<what> <kind> <mode>"``, e.g. ``"backfill ours deferrable"``."""
    what, kind, mode = case.split()
    hour = prepare(bench, history)
    state = bench.emulator.state
    state.set_run_outcome(EXPORT, "completed", duration=interval * (1 + phase))
    context = make_context(FakeTI(utcnow()), FakeStateStore())
    common: dict[str, Any] = {"timeout": 60}
    if kind == "http":
        common["mode"] = "reschedule" if mode == "reschedule" else "poke"
        common["poke_interval"] = interval
    start, end = backfill_range(hour)
    since, until = hour - HOUR, hour
    worker = Worker()
    bench.emulator.clear_requests()
    began = time.time()
    backfill_id = run_id = None
    # The arguments our backfill operator and run sensor share (for kind "ours").
    ours = {**common, "batch_export_id": EXPORT, "deferrable": mode == "deferrable", "hook_params": FAST_HOOK}
    if what == "backfill" and kind == "ours":
        task: Any = PostHogBackfillBatchExportOperator(
            task_id="backfill", start_at=start, end_at=end, poll_interval=interval, **ours
        )
    elif what == "backfill":
        with PostHogHook() as hook:  # HttpSensor waits on a backfill something else started
            backfill_id = hook.create_batch_export_backfill(EXPORT, start_at=start, end_at=end)["backfill_id"]
            # PostHog shows a new backfill a moment late; a plain HttpSensor would fail on that 404.
            hook.get_batch_export_backfill(EXPORT, backfill_id, row_timeout=30)
        task = http_sensor(bench, f"backfills/{backfill_id}/", http_backfill_done, **common)
    else:
        run_id = state.start_run(EXPORT, since, until)["id"]
        if kind == "ours":
            task = PostHogBatchExportRunSensor(
                task_id=f"exported_{mode}",
                since=since,
                until=until,
                poke_interval=interval,
                mode="reschedule" if mode == "reschedule" else "poke",
                **ours,
            )
        else:
            task = http_sensor(bench, "runs/", http_interval_done(since, until), **common)
    result = drive(task, context, mode, worker)
    returned = time.time()
    if what == "backfill" and kind == "ours":
        backfill_id = result["backfill_id"]
        assert result["status"] == "Completed", result
    requests = list(bench.emulator.requests)
    with PostHogHook() as hook:
        if backfill_id is not None:
            finished = hook.get_batch_export_backfill(EXPORT, backfill_id)["finished_at"]
        else:
            assert run_id is not None
            finished = hook.get_batch_export_run(EXPORT, run_id)["finished_at"]
    ended = parse_timestamp("finished_at", finished).timestamp()
    deciding = min((r.started_at for r in requests if r.started_at >= ended), default=returned)
    return Sample(
        latency=returned - ended,
        after_poll=returned - deciding,
        held=worker.held(began + interval / 2, ended),
        busy=worker.busy(),
        wait=returned - began,
        requests=traffic(requests).requests,
        first_span_requests=traffic(
            [r for r in requests if worker.spans[0][0] <= r.started_at <= worker.spans[0][1]]
        ).requests,
    )


CASES = (
    "backfill ours worker",
    "backfill ours deferrable",
    "backfill http poke",
    "run ours poke",
    "run ours reschedule",
    "run ours deferrable",
    "run http poke",
    "run http reschedule",
)


def waits(bench: Bench, interval: float, repeats: int, history: int) -> dict[str, list[Sample]]:
    phases = [(k + 0.5) / repeats for k in range(repeats)]
    return {case: [one_wait(bench, case, interval, phase, history) for phase in phases] for case in CASES}


# -- the figures ------------------------------------------------------------------------------------


def _per_poll(t: Traffic, polls: int) -> tuple[float, float]:
    return t.requests / polls, t.response_bytes / polls


def _idle_figures(idle: dict[str, Any]) -> list[Figure]:
    polls = idle["polls"]
    figures = []
    for what, worker_key, trigger_key, http_key, label, http_note in (
        (
            "backfill wait",
            "backfill_worker",
            "backfill_trigger",
            "backfill_http_sensor",
            "in the worker / trigger",
            "HttpSensor on backfills/{id}/",
        ),
        (
            "run sensor",
            "run_sensor_pokes",
            "run_trigger",
            "run_http_sensor",
            "poke / trigger",
            f"HttpSensor on runs/ reads PostHog's default listing: {min(100, idle['runs_in_last_7_days'])} "
            f"of {idle['runs_in_last_7_days']} runs of the last 7 days",
        ),
    ):
        worker = Traffic(**idle[worker_key])
        trigger = [Traffic(**t) for t in idle[trigger_key]]
        http = Traffic(**idle[http_key])
        w_requests, w_bytes = _per_poll(worker, polls)
        t_requests = max(t.requests for t in trigger)
        t_bytes = max(t.response_bytes for t in trigger)
        h_requests, h_bytes = _per_poll(http, polls)
        requests = max(w_requests, t_requests)
        size = max(w_bytes, t_bytes)
        answer = (
            f"; the export with its newest runs in each answer "
            f"({idle['runs_in_run_sensor_answer']} runs created since since - 5 min)"
            if what == "run sensor"
            else ""
        )
        figures += [
            Figure(
                8,
                f"{what}, idle poll ({label}): requests per poll",
                requests,
                "requests",
                h_requests,
                "<= 1",
                requests <= 1,
                f"{w_requests:g} / {t_requests} over {polls} / {len(trigger)} polls; TCP connections for "
                f"{polls} polls: ours {worker.connections}, HttpSensor {http.connections}",
            ),
            Figure(
                8,
                f"{what}, idle poll ({label}): response bytes per poll (max)",
                round(size),
                "bytes",
                round(h_bytes),
                # The run sensor's poll is the export itself: its paused flag (a pause fails the
                # wait at once) and its 10 newest runs, which answer most polls alone.
                "< 2048" if what != "run sensor" else "< 8192",
                size < (2048 if what != "run sensor" else 8192),
                f"{w_bytes:.0f} / {t_bytes}{answer}; {http_note}",
            ),
        ]
    return figures


def _slot_figures(samples: dict[str, list[Sample]]) -> list[Figure]:
    def held(case: str) -> float:
        return statistics.mean(s.held for s in samples[case])

    def stints(case: str) -> str:
        """What the deferrable task did in the worker, and for how long, against the whole wait."""
        runs = samples[case]
        busy = statistics.median(s.busy for s in runs) * 1000
        wait = statistics.median(s.wait for s in runs)
        first = max(s.first_span_requests for s in runs)
        return f"execute made {first} request(s), then deferred; in a worker {busy:.0f} ms of {wait:.2f} s"

    def slots(what: str, label: str, others: str) -> Figure:
        """Slots held by the deferrable ``what`` wait, next to HttpSensor's in poke mode."""
        deferrable = f"{what} ours deferrable"
        return Figure(
            8,
            f"{label}, deferrable: worker slots held while waiting",
            round(held(deferrable), 3),
            "slots",
            round(held(f"{what} http poke"), 3),
            note=f"time-weighted; {stints(deferrable)}{others}; reference: HttpSensor, poke mode",
        )

    return [
        slots(
            "backfill",
            "backfill wait",
            f" (read the export, create, one poll); deferrable=False {held('backfill ours worker'):.2f}",
        ),
        slots(
            "run",
            "run sensor",
            f"; poke mode {held('run ours poke'):.2f}, reschedule {held('run ours reschedule'):.3f} "
            f"(HttpSensor {held('run http reschedule'):.3f})",
        ),
    ]


def _latency_figures(samples: dict[str, list[Sample]], interval: float, repeats: int) -> list[Figure]:
    limit = interval + 0.1
    figures = []
    for what, mode, label, http_case in (
        ("backfill", "worker", "backfill wait in the worker", "backfill http poke"),
        ("backfill", "deferrable", "backfill wait, deferred", None),
        ("run", "poke", "run sensor, poke mode", "run http poke"),
        ("run", "reschedule", "run sensor, reschedule mode", "run http reschedule"),
        ("run", "deferrable", "run sensor, deferrable mode", None),
    ):
        ours = samples[f"{what} ours {mode}"]
        latencies = [s.latency for s in ours]
        http = [s.latency for s in samples[http_case]] if http_case else None
        http_note = None
        if http_case:
            http_overhead = statistics.median(s.after_poll for s in samples[http_case]) * 1000
            http_note = f"HttpSensor {http_overhead:.1f} ms, max {max(http or [0]):.3f} s"
        figures.append(
            latency_figure(
                8,
                f"run finished to task done, {label} (median of {repeats} phases, poll {interval:g} s)",
                statistics.median,
                latencies,
                statistics.median(s.after_poll for s in ours) * 1000,
                http,
                http_note,
                floor=f"max <= {limit:g}",
                passed=max(latencies) <= limit,
            )
        )
    return figures


def run(
    bench: Bench, history: int, polls: int, interval: float, repeats: int
) -> tuple[list[Figure], dict[str, Any]]:
    idle = idle_polls(bench, history, polls)
    samples = waits(bench, interval, repeats, history)
    details = {
        "idle": idle,
        "poll_interval": interval,
        "phases": [(k + 0.5) / repeats for k in range(repeats)],
        "waits": {case: [s.__dict__ for s in runs] for case, runs in samples.items()},
    }
    figures = _idle_figures(idle) + _slot_figures(samples) + _latency_figures(samples, interval, repeats)
    return figures, details
