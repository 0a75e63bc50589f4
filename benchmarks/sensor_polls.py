"""
Item 4: what one poll costs in steady state, with many old log entries and none new.

The export's log holds ``old_entries`` lines written before the task started, none of which is
the awaited one. Ours: the sensor's ``poke`` (poke and reschedule mode poll this way) and the
trigger's polls (deferrable mode). HTTP provider: HttpSensor on the same logs endpoint with
PostHog's default limit and a ``response_check`` looking for the same message.

The late-entries window (``late_entries_window``, default 300 s): PostHog reveals log entries out
of timestamp order, so every poll reads again the entries of the last ``late_entries_window``
seconds after ``since``. Two more cases measure what that costs an idle poll: (a) ``old_entries``
lines after ``since`` but all older than the window (after the first poke, which reads them once, a
poll should stay one small request), and (b) N lines logged in the last 5 minutes, re-read by every
poll while they are younger than ``late_entries_window``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from airflow.providers.http.sensors.http import HttpSensor
from phenv_emulator import SEED

from airflow_provider_phenv.hooks.calls import entry_time
from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.sensors.batch_exports import PostHogBatchExportLogsSensor
from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportLogsTrigger
from airflow_provider_phenv.validation import format_timestamp
from airflow_provider_phenv.waits.logs import DEFAULT_LATE_ENTRIES_WINDOW, STATE_KEY
from benchmarks.harness import HTTP_CONN_ID, Bench, Figure, idle_trigger_polls, traffic, utcnow
from tests.helpers.sensor_modes import FakeStateStore, FakeTI, make_context

EXPORT = SEED.bigquery_export_id
PATTERN = r"finished (successfully )?with (\d+|no) records exported"
#: The N of case (b), and the windows it is measured with.
RECENT_COUNTS = (10, 100, 500)
WINDOWS = (DEFAULT_LATE_ENTRIES_WINDOW, 60.0)
RECENT_SPAN = 290.0  # seconds: case (b)'s lines are spread over the last 5 minutes, all younger than 300 s


def progress_line(number: int, at: Any) -> dict[str, Any]:
    """A realistic log line that does not match PATTERN."""
    return {
        "timestamp": at,
        "level": "INFO",
        "message": f"Batch exporting range 2025-01-01 {number % 24:02d}:00 - {number % 24:02d}:59 "
        f"to BigQuery: hedgebox-analytics.posthog.events (part {number})",
        "instance_id": f"run-{number // 50}",
    }


def old_log(count: int, before: Any) -> list[dict[str, Any]]:
    """``count`` realistic log lines, one per second, all before ``before``; none matches PATTERN."""
    return [progress_line(number, before - timedelta(seconds=count - number)) for number in range(count)]


def recent_log(count: int, now: Any) -> list[dict[str, Any]]:
    """``count`` such lines spread evenly over the ``RECENT_SPAN`` seconds before ``now``."""
    return [
        progress_line(number, now - timedelta(seconds=RECENT_SPAN * (count - number - 0.5) / count))
        for number in range(count)
    ]


def http_check(response: Any) -> bool:
    return any(re.search(PATTERN, entry["message"]) for entry in response.json()["results"])


def trigger_polls(
    bench: Bench, since: str, polls: int, interval: float, window: float = DEFAULT_LATE_ENTRIES_WINDOW
) -> list[list[Any]]:
    """Run the trigger for ``polls`` intervals; its requests grouped by poll (gaps > interval / 2)."""
    trigger = PostHogBatchExportLogsTrigger(
        batch_export_id=EXPORT,
        since=since,
        criteria={"message_pattern": PATTERN, "late_entries_window": window},
        poll_interval=interval,
    )

    return idle_trigger_polls(bench, trigger, polls, interval)


def run(
    bench: Bench, old_entries: int, polls: int, recent_counts: tuple[int, ...] = RECENT_COUNTS
) -> tuple[list[Figure], dict[str, Any]]:
    bench.reset()
    start = utcnow()
    bench.emulator.state.add_log_entries(EXPORT, old_log(old_entries, start))
    context = make_context(FakeTI(start), FakeStateStore())
    sensor = PostHogBatchExportLogsSensor(
        task_id="wait", batch_export_id=EXPORT, message_pattern=PATTERN, poke_interval=1
    )
    first = bench.measure(lambda: sensor.poke(context))
    steady = bench.measure(lambda: [sensor.poke(context) for _ in range(polls)])
    sensor.hook.close()
    groups = trigger_polls(bench, format_timestamp(start), polls, interval=0.2)
    deferred = [traffic(group) for group in groups]

    http_sensor = HttpSensor(
        task_id="wait_http",
        http_conn_id=HTTP_CONN_ID,
        endpoint=f"{bench.api}/batch_exports/{EXPORT}/logs/",
        response_check=http_check,
        poke_interval=1,
    )
    http_steady = bench.measure(lambda: [http_sensor.poke(context) for _ in range(polls)])

    # On the seeded log alone (runs that finished hours ago): does a first poke wrongly succeed?
    bench.reset()
    fresh_context = make_context(FakeTI(utcnow()), FakeStateStore())
    fresh_sensor = PostHogBatchExportLogsSensor(
        task_id="wait", batch_export_id=EXPORT, message_pattern=PATTERN, poke_interval=1
    )
    false_success = {
        "ours": bool(fresh_sensor.poke(fresh_context)),
        "http": bool(http_sensor.poke(fresh_context)),
    }
    fresh_sensor.hook.close()

    per_poll = steady.requests / polls
    bytes_per_poll = steady.response_bytes / polls
    http_bytes = http_steady.response_bytes / polls
    trigger_requests = max(t.requests for t in deferred)
    trigger_bytes = max(t.response_bytes for t in deferred)
    details = {
        "old_entries": old_entries,
        "polls": polls,
        "first_poke": first.to_json(),
        "steady_pokes": steady.to_json(),
        "trigger_polls": [t.to_json() for t in deferred],
        "http_sensor_pokes": http_steady.to_json(),
        "first_poke_succeeds_on_old_runs": false_success,
    }
    figures = [
        Figure(
            4,
            f"sensor poll, {old_entries} old entries: requests per poll",
            per_poll,
            "requests",
            http_steady.requests / polls,
            "<= 1",
            per_poll <= 1,
            f"poke/reschedule; {steady.connections} connection(s) for {polls} pokes in poke mode, "
            f"HttpSensor {http_steady.connections}",
        ),
        Figure(
            4,
            f"sensor poll, {old_entries} old entries: response bytes per poll",
            round(bytes_per_poll),
            "bytes",
            round(http_bytes),
            "<= 1024",
            bytes_per_poll <= 1024,
            "entries before since are never read again; "
            "HttpSensor reads PostHog's default page of 50 entries each poke",
        ),
        Figure(
            4,
            "trigger poll (deferrable), same log: requests / bytes per poll (max)",
            f"{trigger_requests} / {trigger_bytes}",
            "requests / bytes",
            None,
            "<= 1 / <= 1024",
            trigger_requests <= 1 and trigger_bytes <= 1024,
            f"{len(deferred)} polls; HttpSensor cannot defer with a response_check",
        ),
        Figure(
            4,
            "first poke on a log with only runs finished before the task: wrongly succeeds?",
            "yes" if false_success["ours"] else "no",
            "",
            "yes" if false_success["http"] else "no",
            note="HttpSensor with the default limit and no after= sees old runs' lines",
        ),
    ]
    window_figures, details["late_entries_window"] = window_cost(
        bench, http_sensor, old_entries, polls, recent_counts
    )
    return figures + window_figures, details


def idle_cost(
    bench: Bench,
    http_sensor: HttpSensor,
    entries: list[dict[str, Any]],
    since: Any,
    window: float,
    polls: int,
) -> dict[str, Any]:
    """A sensor with an explicit ``since`` on a log of ``entries``: its first poke, then idle pokes."""
    bench.reset()
    bench.emulator.state.add_log_entries(EXPORT, entries)
    store = FakeStateStore()
    context = make_context(FakeTI(utcnow()), store)
    sensor = PostHogBatchExportLogsSensor(
        task_id="wait",
        batch_export_id=EXPORT,
        message_pattern=PATTERN,
        since=since,
        late_entries_window=window,
        poke_interval=1,
    )
    done: list[Any] = []
    first = bench.measure(lambda: done.append(sensor.poke(context)))
    writes = store.writes
    steady = bench.measure(lambda: done.extend(sensor.poke(context) for _ in range(polls)))
    writes = store.writes - writes
    if any(done):
        raise RuntimeError("the sensor matched an entry: these polls were not idle")
    sensor.hook.close()
    # Entries still in the window at the last poll: what each idle poll read again.
    mark = utcnow() - timedelta(seconds=window)
    http = bench.measure(lambda: [http_sensor.poke(context) for _ in range(polls)])
    return {
        "entries": len(entries),
        "late_entries_window": window,
        "first_poke": first.to_json(),
        "steady_pokes": steady.to_json(),
        "reread_per_poll": sum(1 for entry in entries if entry["timestamp"] > mark),
        "cursor_bytes": len(store.data.get(STATE_KEY, "")),
        "state_writes_per_poll": writes / polls,
        "http_sensor_pokes": http.to_json(),
    }


def window_cost(
    bench: Bench, http_sensor: HttpSensor, old_entries: int, polls: int, counts: tuple[int, ...]
) -> tuple[list[Figure], dict[str, Any]]:
    """Idle polls with a history older than the late-entries window (a), and with N recent entries (b)."""
    # (a) ``old_entries`` lines after ``since``, the newest a minute older than the window. ``since``
    # is after the seed's own lines, which include runs' success lines the sensor would match.
    bench.reset()
    with PostHogHook() as hook:
        seeded = hook.get_batch_export_logs(EXPORT, limit=1)["results"]
    now = utcnow()
    since = max([now - timedelta(minutes=55)] + [entry_time(entry) for entry in seeded])
    newest = now - timedelta(seconds=DEFAULT_LATE_ENTRIES_WINDOW + 60)
    if since >= newest:
        raise RuntimeError(f"the seeded log reaches {since}: no room for a history older than the window")
    step = (newest - since) / old_entries
    history = [progress_line(number, since + step * (number + 1)) for number in range(old_entries)]
    old = idle_cost(bench, http_sensor, history, since, DEFAULT_LATE_ENTRIES_WINDOW, polls)
    steady = old["steady_pokes"]
    requests, size = steady["requests"] / polls, steady["response_bytes"] / polls
    figures = [
        Figure(
            4,
            f"idle poll, {old_entries} entries after since, all older than the late-entries window: "
            "requests / bytes per poll",
            f"{requests:g} / {size:.0f}",
            "requests / bytes",
            None,
            "<= 1 / <= 1024",
            requests <= 1 and size <= 1024,
            f"window {DEFAULT_LATE_ENTRIES_WINDOW:g} s; the first poke read them once: "
            f"{old['first_poke']['requests']} request(s), {old['first_poke']['response_bytes'] / 1e6:.2f} "
            f"MB; HttpSensor {old['http_sensor_pokes']['response_bytes'] / polls:,.0f} bytes per poke",
        )
    ]
    recent: list[dict[str, Any]] = []
    for window in WINDOWS:
        for count in counts:
            now = utcnow()
            since = now - timedelta(minutes=10)
            # (b) ``count`` lines of the last 5 minutes, after a ``since`` 10 minutes ago.
            case = idle_cost(bench, http_sensor, recent_log(count, now), since, window, polls)
            if window == DEFAULT_LATE_ENTRIES_WINDOW and count == max(counts):
                groups = trigger_polls(bench, format_timestamp(since), polls, 0.2, window)
                case["trigger_polls"] = [traffic(group).to_json() for group in groups]
            recent.append(case)
            figures.append(_recent_figure(case, polls, count == min(counts)))
    return figures, {"older_than_window": old, "recent": recent}


def _recent_figure(case: dict[str, Any], polls: int, first: bool) -> Figure:
    steady = case["steady_pokes"]
    note = (
        f"{steady['requests'] / polls:g} request(s) per poll, {case['reread_per_poll']} entries read "
        f"again each time; cursor in the task state store {case['cursor_bytes'] / 1024:.1f} KB, "
        f"written by {case['state_writes_per_poll']:.0%} of the polls"
    )
    trigger = case.get("trigger_polls", [])[1:]  # after the first poll, which reads them all
    if trigger:
        note += (
            f"; trigger the same: {max(t['requests'] for t in trigger)} request(s), "
            f"{max(t['response_bytes'] for t in trigger):,} bytes per idle poll"
        )
    if first:
        note += "; HttpSensor reads the newest 50 entries"
    return Figure(
        4,
        f"idle poll, {case['entries']} entries in the last 5 min, window {case['late_entries_window']:g} s: "
        "response bytes per poll",
        round(steady["response_bytes"] / polls),
        "bytes",
        round(case["http_sensor_pokes"]["response_bytes"] / polls),
        note=note,
    )
