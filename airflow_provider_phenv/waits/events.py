"""
The run-event contract and the state kept between polls: which batch export runs newly reached a
status, the bookkeeping behind
:class:`~airflow_provider_phenv.triggers.batch_exports.PostHogBatchExportRunEventTrigger`, and the
fields of a run that events and XCom carry (:func:`run_event`, :func:`run_summary`).

Pure logic over the run dicts PostHog returns (docs/posthog-api.md §5, §6.9), no I/O, so it is
tested without a triggerer and its state is a plain JSON value that fits Airflow's asset state
store.

How a run is judged, once per run:

- **Old runs never fire.** At its first start the watch records the moment (``since``), the runs
  still active then (Starting, Running, FailedRetryable, ContinuedAsNew) and the finished runs of
  the last :data:`SETTLE`. Any other run created before ``since`` had already finished: ignored.
- **A run fires once**, the first time it is seen in one of the watched statuses, if it was active
  at the start or created after it. Then it is ``done``; so is a run seen in a final status it does
  not watch. A condition that stays true (a run stays Completed) never fires again.
- **A run created earlier can finish later**: active runs stay ``tracked`` until they end, and the
  next query starts at the oldest of them (``runs/?after=``), so one GET per poll sees them all.
- **Bounded**: ``done`` keeps only runs created after the horizon (:data:`SETTLE` behind the newest
  run seen; an unknown run older than that is never taken for a new one); at most
  :data:`MAX_TRACKED` active runs are tracked, none older than :data:`MAX_TRACKED_AGE` (PostHog's
  own default window for the runs list).
- **Late visibility and clocks**: the horizon stays :data:`SETTLE` behind the newest run seen, so
  a run whose row became visible a little after a newer one is still read, and a few seconds of
  difference between PostHog's clock and the triggerer's cannot hide a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_phenv.validation import RUN_STATUSES, RunStatus, format_timestamp, parse_timestamp
from airflow_provider_phenv.waits import ACTIVE_STATUSES, FINAL_STATUSES, LATEST_RUNS

#: How far the next query reaches back behind the newest run seen.
SETTLE = timedelta(minutes=5)
#: At most this many active runs are tracked per watched export; the oldest are dropped.
MAX_TRACKED = 1000
#: An active run is no longer tracked once it is this old (PostHog lists 7 days by default).
MAX_TRACKED_AGE = timedelta(days=7)
#: The fields of a run event, in this order.
EVENT_FIELDS = (
    "batch_export_id",
    "run_id",
    "status",
    "data_interval_start",
    "data_interval_end",
    "records_completed",
    "latest_error",
)


def check_statuses(statuses: str | Iterable[str]) -> list[str]:
    """The watched statuses as a list without duplicates, each one of PostHog's run statuses."""
    items = [statuses] if isinstance(statuses, str) else list(statuses)
    if not items:
        raise ValueError("Invalid statuses []: expected at least one run status.")
    unknown = [item for item in items if item not in RUN_STATUSES]
    if unknown:
        raise ValueError(f"Invalid statuses {unknown!r}: expected run statuses from {list(RUN_STATUSES)}.")
    return list(dict.fromkeys(RunStatus(item).value for item in items))


def run_event(batch_export_id: str, run: dict[str, Any]) -> dict[str, Any]:
    """The payload of one run's event: plain JSON values only."""
    return {
        "batch_export_id": batch_export_id,
        "run_id": run["id"],
        "status": run["status"],
        "data_interval_start": run.get("data_interval_start"),
        "data_interval_end": run.get("data_interval_end"),
        "records_completed": run.get("records_completed"),
        "latest_error": run.get("latest_error"),
    }


def run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a run worth keeping in XCom and events."""
    return {
        "id": run.get("id"),
        "status": run.get("status"),
        "data_interval_start": run.get("data_interval_start"),
        "data_interval_end": run.get("data_interval_end"),
        "records_completed": run.get("records_completed"),
    }


def _when(value: str) -> datetime:
    return parse_timestamp("created_at", value)


@dataclass
class RunEventWatch:
    """
    What one watched export has seen so far. ``to_json()`` is what goes to the state store.

    :param statuses: the statuses that fire.
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

    # -- state -------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.since is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "since": self.since,
            "cursor": self.cursor,
            "tracked": {run_id: list(seen) for run_id, seen in self.tracked.items()},
            "done": dict(self.done),
        }

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

    # -- starting ----------------------------------------------------------------------------

    def start(self, now: datetime, runs: Iterable[dict[str, Any]]) -> None:
        """
        Begin watching at ``now``: runs active now are followed, every other existing run is old.

        :param runs: the runs active now and every run created in the last :data:`SETTLE` (PostHog
            and this machine may disagree a little on the time). A run already in a watched status
            fires only when it moves on to another watched status.
        """
        self.since = self.cursor = format_timestamp(now)
        for run in runs:
            if run.get("status") in ACTIVE_STATUSES:
                self._track(run)
            else:
                self.done[run["id"]] = format_timestamp(_when(run["created_at"]))
        self._prune(now)

    def _track(self, run: dict[str, Any]) -> None:
        self.tracked[run["id"]] = [format_timestamp(_when(run["created_at"])), run.get("status")]

    # -- polling -----------------------------------------------------------------------------

    def horizon(self) -> datetime:
        """Runs created before this were judged already (or are older than the watch) unless tracked."""
        assert self.since is not None and self.cursor is not None
        return max(_when(self.since), _when(self.cursor)) - SETTLE

    def lower_bound(self) -> datetime:
        """The ``after=`` of the next runs query: nothing older can still change what fires."""
        bound = self.horizon()
        if self.tracked:
            bound = min(bound, min(_when(created) for created, _ in self.tracked.values()))
        return bound

    def covers(self, latest_runs: Sequence[dict[str, Any]]) -> bool:
        """
        Whether an export's ``latest_runs`` (at most the 10 newest) shows every run that matters.

        True when the list is not full (it holds every run), or when its oldest entry is already
        known (everything older was judged before) and no tracked run fell out of it.
        """
        if len(latest_runs) < LATEST_RUNS:
            return True
        oldest = min(latest_runs, key=lambda run: _when(run["created_at"]))
        oldest_at = _when(oldest["created_at"])
        known = oldest["id"] in self.done or oldest["id"] in self.tracked or oldest_at < self.horizon()
        shown = {run["id"] for run in latest_runs}
        return known and all(run_id in shown for run_id in self.tracked)

    def judge(self, runs: Iterable[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """
        Judge the runs one poll returned; return those that fire, oldest first, and note them done.

        :param runs: runs as PostHog lists them (any order; ids already judged are skipped).
        :param now: the current time, to stop tracking runs older than :data:`MAX_TRACKED_AGE`.
        """
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


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
