"""Judging batch export runs and backfills for the run sensor, the backfill waits and their trigger, reporting
completed runs, and the run events of asset watchers (docs/waits.md, "Runs and backfills", "Run events")."""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_phenv.errors import PostHogBackfillNotVisibleError, PostHogNotFoundError
from airflow_provider_phenv.hooks.posthog import BACKFILL_ROW_GRACE
from airflow_provider_phenv.lineage import (
    PostHogLineageMixin,
    attach_outlet_extras,
    batch_export_outlet_extra,
)
from airflow_provider_phenv.validation import (
    RUN_STATUSES,
    RunStatus,
    check_uuid,
    format_timestamp,
    parse_timestamp,
)
from airflow_provider_phenv.waits import (
    ACTIVE_STATUSES,
    FAILED,
    FAILED_STATUSES,
    FINAL_STATUSES,
    LATEST_RUNS,
    SUCCESS,
    WAITING,
    run_summary,
)

if TYPE_CHECKING:
    from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook, PostHogHook
    from airflow_provider_phenv.waits.project_poll import Listing


# A run's latest_error is quoted in errors and events; PostHog's can carry whole tracebacks.
_MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class RunsOutcome:
    """What PostHog's runs say about a wait.

    :param status: ``waiting``, ``success`` or ``failed``.
    :param value: the task's XCom value (while waiting: the progress so far).
    :param message: why the wait failed, quoting PostHog; or the progress line while waiting.
    """

    status: str
    value: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    #: The runs the outcome is about (:func:`run_summary` of each), for lineage and asset events.
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_event(self) -> dict[str, Any]:
        return {"value": self.value, "message": self.message, "runs": self.runs}

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> RunsOutcome:
        """Rebuild the outcome a trigger event reports; ``ValueError`` names what is missing."""
        value, message = event.get("value"), event.get("message")
        if not isinstance(value, dict) or not isinstance(message, str):
            raise ValueError("no value or message")
        runs = event.get("runs") or []
        return cls(event["status"], value, message, [run for run in runs if isinstance(run, dict)])


def _records(runs: list[dict[str, Any]]) -> int:
    return sum(run.get("records_completed") or 0 for run in runs if run.get("status") == "Completed")


def _describe_failures(runs: list[dict[str, Any]]) -> str:
    lines = []
    for run in runs:
        error = str(run.get("latest_error") or "no error message")
        if len(error) > _MAX_ERROR_CHARS:
            error = error[: _MAX_ERROR_CHARS - 1] + "…"
        lines.append(
            f"run {run.get('id')} for {run.get('data_interval_start')} - {run.get('data_interval_end')} "
            f"ended {run.get('status')}: {error}"
        )
    return "; ".join(lines)


def backfill_value(
    batch_export_id: str, backfill: dict[str, Any], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The backfill operator's XCom value: ids, status, progress (PostHog's, else the runs') and records."""
    progress = backfill.get("progress") or {}
    finished = [run for run in runs if run.get("status") in ("Completed", "Failed")]
    total, done = progress.get("total_runs"), progress.get("finished_runs")
    return {
        "batch_export_id": batch_export_id,
        "backfill_id": backfill.get("id"),
        "status": backfill.get("status"),
        "total_runs": total if isinstance(total, int) else (len(runs) if runs else None),
        "finished_runs": done if isinstance(done, int) else (len(finished) if runs else None),
        "records_completed": _records(runs),
    }


def judge_backfill(batch_export_id: str, backfill: dict[str, Any], runs: list[dict[str, Any]]) -> RunsOutcome:
    """Whether a backfill is done, and done well; of ``runs``, only the backfill's own count."""
    backfill_id = backfill.get("id")
    own = [run for run in runs if run.get("backfill") == backfill_id]
    value = backfill_value(batch_export_id, backfill, own)
    status = backfill.get("status")
    progress = f"{value['finished_runs']}/{value['total_runs']} runs finished"
    if value["total_runs"] is None or value["finished_runs"] is None:
        progress = f"{status}, run count not known yet"
    what = f"Backfill {backfill_id} of batch export {batch_export_id}"
    if status in ACTIVE_STATUSES:
        return RunsOutcome(WAITING, value, f"{what}: {progress}.")
    failed = [run for run in own if run.get("status") in FAILED_STATUSES]
    if status == "Completed" and not failed:
        runs = [run_summary(run) for run in own]
        return RunsOutcome(SUCCESS, value, f"Backfill {backfill_id} completed: {progress}.", runs)
    why = f"; {_describe_failures(failed)}" if failed else ""
    return RunsOutcome(FAILED, value, f"{what} ended {status} ({progress}){why}")


def _interval(run: dict[str, Any]) -> tuple[datetime, datetime] | None:
    try:
        return (
            parse_timestamp("data_interval_start", run["data_interval_start"]),
            parse_timestamp("data_interval_end", run["data_interval_end"]),
        )
    except (KeyError, ValueError):
        return None


def _uncovered(
    since: datetime, until: datetime, spans: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """The parts of ``[since, until)`` that no span covers."""
    gaps, position = [], since
    for start, end in sorted(spans):
        if start > position:
            gaps.append((position, min(start, until)))
        position = max(position, end)
        if position >= until:
            break
    if position < until:
        gaps.append((position, until))
    return [(start, end) for start, end in gaps if start < end]


def judge_interval(
    batch_export_id: str, runs: list[dict[str, Any]], since: datetime, until: datetime
) -> RunsOutcome:
    """Whether PostHog has exported ``[since, until)``: completed runs cover all of it. A failed run counts
    only while no completed run (a retry) covers its interval and none active works on it.
    """
    relevant = [
        (span, run) for run in runs if (span := _interval(run)) and span[0] < until and span[1] > since
    ]
    completed = [run for _span, run in relevant if run.get("status") == "Completed"]
    summaries = [run_summary(run) for run in completed]
    value = {"batch_export_id": batch_export_id, "runs": summaries, "records_completed": _records(completed)}
    completed_spans = [span for span, run in relevant if run.get("status") == "Completed"]
    gaps = _uncovered(since, until, completed_spans)
    what, where = f"Batch export {batch_export_id}", f"{format_timestamp(since)} - {format_timestamp(until)}"
    if not gaps:
        return RunsOutcome(SUCCESS, value, f"{what} has exported {where}.", summaries)
    working = [span for span, run in relevant if run.get("status") in ACTIVE_STATUSES]
    failed = [
        run
        for span, run in relevant
        if run.get("status") in FAILED_STATUSES
        and _uncovered(max(span[0], since), min(span[1], until), completed_spans)
        and not any(start < span[1] and end > span[0] for start, end in working)
    ]
    if failed:
        return RunsOutcome(FAILED, value, f"{what} could not export {where}: {_describe_failures(failed)}")
    missing = ", ".join(f"{format_timestamp(start)} - {format_timestamp(end)}" for start, end in gaps)
    return RunsOutcome(WAITING, value, f"{what}: waiting for {missing}.")


def runs_wait(
    batch_export_id: Any,
    *,
    backfill_id: Any = None,
    since: Any = None,
    until: Any = None,
    started_at: Any = None,
    row_grace: float = BACKFILL_ROW_GRACE,
) -> RunsWait:
    """A :class:`RunsWait` from user or serialized values, checked; every error names the value. A backfill's
    wait begins now unless ``started_at`` says when."""
    export_id = check_uuid("batch_export_id", batch_export_id)
    started = None if started_at is None else parse_timestamp("started_at", started_at, naive_ok=False)
    if backfill_id is not None:
        backfill = check_uuid("backfill_id", backfill_id)
        started = started or datetime.now(timezone.utc)
        return RunsWait(export_id, backfill_id=backfill, started_at=started, row_grace=float(row_grace))
    if until is None or since is None:
        raise ValueError("Invalid wait: give backfill_id, or both since and until.")
    start = parse_timestamp("since", since, naive_ok=False)
    end = parse_timestamp("until", until, naive_ok=False)
    if start >= end:
        raise ValueError(f"Invalid since {since!r}: it must be before until {until!r}.")
    return RunsWait(export_id, since=start, until=end, started_at=started)


#: Seconds of each export interval (docs/posthog-api.md §5), for the run sensor's default ``since``.
INTERVAL_SECONDS = {
    "every 5 minutes": 300,
    "every 15 minutes": 900,
    "hour": 3600,
    "day": 86400,
    "week": 604800,
}
# Runs are filtered by creation time; PostHog's clock may differ a little from this machine's.
_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class RunsWait:
    """What a wait on runs asks PostHog each poll, and how it judges the answer: a wait for a backfill
    (``backfill_id``) or until a range is exported (``since``, ``until``); docs/waits.md.

    :param started_at: when the wait began: a backfill PostHog has just accepted may be 404 for
        ``row_grace`` seconds from then; a pause after it fails the wait, one before is waited out.
    """

    batch_export_id: str
    backfill_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    started_at: datetime | None = None
    row_grace: float = BACKFILL_ROW_GRACE

    def to_params(self) -> dict[str, Any]:
        """Plain values, accepted back by :func:`runs_wait`."""
        fields = asdict(self).items()
        return {name: format_timestamp(v) if isinstance(v, datetime) else v for name, v in fields}

    def runs_after(self, backfill: dict[str, Any] | None) -> datetime:
        """The ``after`` filter (creation time) of the runs request."""
        if backfill is not None:
            created = backfill.get("created_at")
            start = parse_timestamp("backfill created_at", created) if created else datetime.now(timezone.utc)
        else:
            assert self.since is not None
            start = self.since
        return start - _CLOCK_SKEW

    def _interval_outcome(self, export: Mapping[str, Any], runs: list[dict[str, Any]]) -> RunsOutcome:
        """Whether the range is exported, told by a pause of the export."""
        assert self.since is not None and self.until is not None
        return self._with_pause(judge_interval(self.batch_export_id, runs, self.since, self.until), export)

    def _not_visible(self, error: PostHogNotFoundError) -> RunsOutcome:
        """A backfill PostHog answers 404 for: not written yet within the grace, else gone."""
        if self.started_at is None:
            raise error
        waited = time.time() - self.started_at.timestamp()
        what = f"Backfill {self.backfill_id} of batch export {self.batch_export_id}"
        if waited > self.row_grace:
            raise PostHogBackfillNotVisibleError(
                f"{what} is still not in PostHog {waited:.0f} s after it was started (PostHog answers "
                f"404: {error.detail or error})."
            ) from error
        return self._unread(
            f"{what} is not visible in PostHog yet (its workflow writes it after starting; "
            f"{waited:.0f} s of {self.row_grace:.0f} s)."
        )

    def _unread(self, message: str) -> RunsOutcome:
        """Waiting on a backfill this poll did not read."""
        value = {"batch_export_id": self.batch_export_id, "backfill_id": self.backfill_id, "status": None}
        return RunsOutcome(WAITING, value, message)

    def _latest_suffice(self, export: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The export's newest runs when they hold every run created since ``runs_after``."""
        latest = export.get("latest_runs")
        if not isinstance(latest, list):
            return None
        if len(latest) < LATEST_RUNS:  # an export's newest runs: enough to judge most polls
            return latest
        try:
            oldest = min(parse_timestamp("created_at", run.get("created_at")) for run in latest)
        except (TypeError, ValueError):
            return None  # a run without a readable creation time: ask the runs list
        return latest if oldest < self.runs_after(None) else None

    def _with_pause(self, outcome: RunsOutcome, export: Mapping[str, Any]) -> RunsOutcome:
        """The outcome, told by a pause of the export (§6.4): a pause during the wait fails it at once."""
        if not export.get("paused") or outcome.status == SUCCESS:
            return outcome
        paused_at = export.get("last_paused_at")
        description = f"batch export {export.get('id')} was paused at {paused_at or 'an unknown time'}"
        if outcome.status == FAILED:
            return RunsOutcome(FAILED, outcome.value, f"{outcome.message}; {description}.")
        moment = None
        with contextlib.suppress(ValueError):
            moment = parse_timestamp("last_paused_at", paused_at) if paused_at else None
        if self.started_at is None or moment is None or moment >= self.started_at - _CLOCK_SKEW:
            return RunsOutcome(
                FAILED,
                outcome.value,
                f"{outcome.message.rstrip('.')}, but {description} (PostHog pauses an export by itself "
                "after repeated failures): no more runs will come until it is unpaused.",
            )
        return RunsOutcome(
            WAITING,
            outcome.value,
            f"{outcome.message} The export is paused since before the wait: waiting for it to be unpaused.",
        )

    def poll(self, hook: PostHogHook, project_id: str | None) -> RunsOutcome:
        export_id = self.batch_export_id
        if self.backfill_id is None:
            export = hook.get_batch_export(export_id, project_id=project_id)
            runs = self._latest_suffice(export)
            if runs is None:
                after = self.runs_after(None)
                runs = hook.list_batch_export_runs(export_id, after=after, project_id=project_id)
            return self._interval_outcome(export, runs)
        try:
            backfill = hook.get_batch_export_backfill(export_id, self.backfill_id, project_id=project_id)
        except PostHogNotFoundError as error:
            return self._not_visible(error)
        if backfill.get("status") in ACTIVE_STATUSES:
            return judge_backfill(export_id, backfill, [])
        runs = hook.list_batch_export_runs(export_id, after=self.runs_after(backfill), project_id=project_id)
        outcome = judge_backfill(export_id, backfill, runs)
        if outcome.status == FAILED:
            outcome = self._with_pause(outcome, hook.get_batch_export(export_id, project_id=project_id))
        return outcome

    async def poll_async(
        self, hook: PostHogAsyncHook, project_id: int | str | None, listing: Listing | None = None
    ) -> RunsOutcome:
        """One poll with the async hook, judged as :meth:`poll`; ``listing``, the project's shared exports
        list, stands for the export's read and, while it shows a run of the backfill at work, the backfill's.
        """
        export_id = self.batch_export_id
        listed = None if listing is None else listing.exports.get(export_id)
        if self.backfill_id is None:
            export = listed or await hook.get_batch_export(export_id, project_id=project_id)
            runs = self._latest_suffice(export)
            if runs is None:
                after = self.runs_after(None)
                runs = await hook.list_batch_export_runs(export_id, after=after, project_id=project_id)
            return self._interval_outcome(export, runs)
        for run in (listed or {}).get("latest_runs") or ():
            if run.get("backfill") == self.backfill_id and run.get("status") in ACTIVE_STATUSES:
                span = f"{run.get('data_interval_start')} - {run.get('data_interval_end')}"
                what = f"Backfill {self.backfill_id} of batch export {export_id}"
                return self._unread(f"{what}: run {run.get('id')} for {span} is {run.get('status')}.")
        try:
            backfill = await hook.get_batch_export_backfill(
                export_id, self.backfill_id, project_id=project_id
            )
        except PostHogNotFoundError as error:
            return self._not_visible(error)
        if backfill.get("status") in ACTIVE_STATUSES:
            return judge_backfill(export_id, backfill, [])
        after = self.runs_after(backfill)
        runs = await hook.list_batch_export_runs(export_id, after=after, project_id=project_id)
        outcome = judge_backfill(export_id, backfill, runs)
        if outcome.status == FAILED:
            export = listed or await hook.get_batch_export(export_id, project_id=project_id)
            outcome = self._with_pause(outcome, export)
        return outcome


def report_runs(
    task: Any,
    context: Mapping[str, Any],
    batch_export_id: str,
    project_id: str | None,
    runs: list[dict[str, Any]],
    *,
    backfill_id: str | None = None,
    export: Mapping[str, Any] | None = None,
) -> None:
    """Attach the completed ``runs`` (``run_summary`` of each) to the task's outlets and, with the
    ``openlineage`` extra, record its lineage (read with ``task.hook``, unless ``export`` is given).
    """
    attach_outlet_extras(context, batch_export_outlet_extra(batch_export_id, runs, backfill_id=backfill_id))
    hook: PostHogHook = task.hook
    if isinstance(task, PostHogLineageMixin) and importlib.util.find_spec("airflow.providers.openlineage"):
        export = export or hook.get_batch_export(batch_export_id, project_id=project_id)
        task.record_posthog_lineage(
            export,
            runs,
            host=hook.settings.base_url,
            project_id=project_id or hook.settings.project_id,
            backfill_id=backfill_id,
        )


# -- run events: which runs newly reached a watched status (docs/waits.md, "Run events") ----------

#: How far the next query reaches back behind the newest run seen.
SETTLE = timedelta(minutes=5)
#: At most this many active runs are tracked per watched export; the oldest are dropped.
MAX_TRACKED = 1000
#: An active run is no longer tracked once it is this old (PostHog lists 7 days by default).
MAX_TRACKED_AGE = timedelta(days=7)


def check_statuses(statuses: str | Iterable[str]) -> list[str]:
    """The watched statuses as a list without duplicates, each one of PostHog's run statuses."""
    items = [statuses] if isinstance(statuses, str) else list(statuses)
    if not items:
        raise ValueError("Invalid statuses []: expected at least one run status.")
    unknown = [item for item in items if item not in RUN_STATUSES]
    if unknown:
        raise ValueError(f"Invalid statuses {unknown!r}: expected run statuses from {list(RUN_STATUSES)}.")
    return list(dict.fromkeys(RunStatus(item).value for item in items))


def _when(value: str) -> datetime:
    return parse_timestamp("created_at", value)


@dataclass
class RunEventWatch:
    """What one watched export has seen so far; ``to_json()`` goes to the asset state store.

    :param since: when the watch first started (ISO 8601); None before its first poll.
    :param cursor: the newest ``created_at`` seen (ISO 8601), or ``since``.
    :param tracked: active runs being followed, run id to ``[created_at, status last seen]``.
    :param done: runs already judged (fired, or ended in another status), run id to ``created_at``.
    """

    statuses: frozenset[str]
    since: str | None = None
    cursor: str | None = None
    tracked: dict[str, list[Any]] = field(default_factory=dict)
    done: dict[str, str] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        return self.since is not None

    def to_json(self) -> dict[str, Any]:
        # The state store's format: version 1 and every field but the statuses (part of the key).
        return {"version": 1, **{name: value for name, value in asdict(self).items() if name != "statuses"}}

    @classmethod
    def from_json(cls, statuses: Iterable[str], value: Any) -> RunEventWatch:
        """A watch restored from :meth:`to_json`; a fresh one when ``value`` is not such a state."""
        watch = cls(frozenset(statuses))
        if isinstance(value, dict) and value.get("version") == 1 and isinstance(value.get("since"), str):
            watch.since = value["since"]
            watch.cursor = value.get("cursor") or value["since"]
            watch.tracked = {
                str(k): [str(v[0]), v[1]]
                for k, v in (value.get("tracked") or {}).items()
                if isinstance(v, list) and len(v) == 2
            }
            watch.done = {str(k): str(v) for k, v in (value.get("done") or {}).items()}
        return watch

    def start(self, now: datetime, runs: Iterable[dict[str, Any]]) -> None:
        """Begin at ``now``, given the runs active now and those of the last :data:`SETTLE`."""
        self.since = self.cursor = format_timestamp(now)
        for run in runs:
            if run.get("status") in ACTIVE_STATUSES:
                self._track(run)
            else:
                self.done[run["id"]] = format_timestamp(_when(run["created_at"]))
        self._prune(now)

    def _track(self, run: dict[str, Any]) -> None:
        self.tracked[run["id"]] = [format_timestamp(_when(run["created_at"])), run.get("status")]

    def horizon(self) -> datetime:
        """Runs created before this were judged already (or are older than the watch) unless tracked."""
        assert self.since is not None and self.cursor is not None
        return max(_when(self.since), _when(self.cursor)) - SETTLE

    def lower_bound(self) -> datetime:
        """The ``after=`` of the next runs query: nothing older can still change what fires."""
        return min([self.horizon(), *(_when(created) for created, _status in self.tracked.values())])

    def covers(self, latest_runs: Sequence[dict[str, Any]]) -> bool:
        """Whether an export's ``latest_runs`` (the 10 newest) shows every run that matters."""
        if len(latest_runs) < LATEST_RUNS:
            return True
        oldest = min(latest_runs, key=lambda run: _when(run["created_at"]))
        oldest_at = _when(oldest["created_at"])
        known = oldest["id"] in self.done or oldest["id"] in self.tracked or oldest_at < self.horizon()
        shown = {run["id"] for run in latest_runs}
        return known and all(run_id in shown for run_id in self.tracked)

    def judge(self, runs: Iterable[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """Judge the runs one poll returned (any order); return those that fire, oldest first."""
        assert self.since is not None and self.cursor is not None
        horizon = self.horizon()
        newest = _when(self.cursor)
        fired: list[dict[str, Any]] = []
        for run in sorted(runs, key=lambda item: _when(item["created_at"])):
            run_id, status, created = run["id"], run.get("status"), _when(run["created_at"])
            if run_id in self.done:
                continue
            seen = self.tracked.get(run_id)
            if seen is None and created < horizon:
                continue  # finished before the watch began, or judged long ago
            newest = max(newest, created)
            if status in self.statuses and (seen is None or seen[1] != status):
                fired.append(run)
                self._finish(run_id, created)
            elif status in FINAL_STATUSES:
                self._finish(run_id, created)
            else:
                self._track(run)
        self.cursor = format_timestamp(newest)
        self._prune(now)
        return fired

    def _finish(self, run_id: str, created: datetime) -> None:
        self.tracked.pop(run_id, None)
        self.done[run_id] = format_timestamp(created)

    def _prune(self, now: datetime) -> None:
        too_old = now - MAX_TRACKED_AGE
        self.tracked = {run_id: seen for run_id, seen in self.tracked.items() if _when(seen[0]) >= too_old}
        if len(self.tracked) > MAX_TRACKED:
            newest_first = sorted(self.tracked.items(), key=lambda item: _when(item[1][0]), reverse=True)
            self.tracked = dict(newest_first[:MAX_TRACKED])
        horizon = self.horizon()
        self.done = {run_id: created for run_id, created in self.done.items() if _when(created) >= horizon}
