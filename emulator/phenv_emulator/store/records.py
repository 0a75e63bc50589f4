"""The emulator's in-memory records, plus the helpers tests use to arrange data.

Every request handler runs while holding :attr:`Records.lock`, and so do the public helpers,
so tests may call them while the server is serving. Records are plain dicts; the attributes below
are documented so tests can read them directly (hold the lock when mutating them by hand).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from ..batch_exports import backfills
from ..batch_exports.runs import (
    LINE_AFTER,
    RunOutcome,
    auto_pause_entries,
    ends_at,
    last_updated_at,
    run_status,
    start_run,
)
from ..web.fields import to_datetime
from .log_store import LogEntry, LogQuery, LogStore
from .seed import ADMIN, MEMBER, SEED
from .switches import AUTO_PAUSE_WINDOW, Switches

#: ``AvailableFeature`` keys (``posthog/constants.py``) the emulator knows, with the names it
#: shows in ``available_product_features`` (the names are the emulator's, not read in PostHog).
ACCESS_CONTROL, ROLE_BASED_ACCESS = "access_control", "role_based_access"
FEATURE_NAMES = {ACCESS_CONTROL: "Access control", ROLE_BASED_ACCESS: "Role-based access"}

# One replayed moment of the timeline: when, its order among same-moment events, what to do.
_Event = tuple[datetime, int, Callable[[], None]]
_MEMBER_NAMESPACE = uuid.UUID("01900000-0000-7000-8000-0000000000ff")


def user_record(
    number: int, user_uuid: str, first_name: str, email: str, current_team_id: int | None
) -> dict[str, Any]:
    """A stored user: PostHog's ``UserBasicSerializer`` fields plus ``current_team_id``."""
    return {
        "id": number,
        "uuid": user_uuid,
        "distinct_id": f"emulator-user-{number}",
        "first_name": first_name,
        "last_name": "",
        "email": email,
        "is_email_verified": True,
        "hedgehog_config": None,
        "role_at_organization": None,
        "current_team_id": current_team_id,
    }


class Records:
    """All emulated PostHog data (:class:`~.state.EmulatorState` starts it from the seed).

    Attributes (all keyed as noted):

    - ``organizations`` — org id → ``{id, name, slug, created_at, features}``; ``features`` are the
      keys of its ``available_product_features`` (``access_control`` makes dashboard restriction
      levels and access-control rules effective, ``role_based_access`` lets rules name roles).
      Read them with :meth:`has_feature`, which also honours the ``no-access-control`` switch.
    - ``teams`` — team id → ``{id, project_id, organization_id, name, flags}``.
    - ``users`` — user uuid → UserBasic fields plus ``current_team_id``.
    - ``memberships`` — ``(org id, user uuid)`` → ``{id, organization_id, user_uuid, level,
      joined_at, updated_at}`` (level 1 member, 8 admin, 15 owner; ``id`` is the membership's own
      uuid, what access-control rules name).
    - ``roles`` — role id → ``{id, name, organization_id, members}`` (``members``: user uuids).
    - ``access_controls`` — list of ``{resource, resource_id, organization_member, role,
      access_level, created_at, updated_at}`` rules (docs/posthog-api.md §7.4).
    - ``api_keys`` — key → ``{scopes, user_uuid, scoped_teams}``.
    - ``integrations`` — integration id → ``{id, kind, team_id}``.
    - ``batch_exports`` — export id → stored export (secrets included, ``deleted`` flag).
    - ``runs`` / ``backfills`` — id → stored run / backfill (a run's ``workflow_run_id`` is the
      ``instance_id`` of its log entries; the API never shows it). A backfill is stored when its
      workflow starts; its row exists from its ``created_at`` (``backfill_row_delay`` later).
    - ``run_outcomes`` — export id → the standing :class:`RunOutcome` of its next runs;
      ``run_outcome_queue`` — export id → outcomes for the very next runs, used first.
    - ``pause_backdates`` — export id (None: every export) → seconds a pause is recorded earlier.
    - ``logs`` — the :class:`LogStore` of batch export log entries.
    - ``dashboards`` — dashboard id → stored dashboard (``tiles`` included, ``deleted`` flag).
    - ``collaborators`` — list of ``{id, dashboard_id, user_uuid, level, added_at, updated_at}``.
    - ``switches`` — the :class:`~.switches.Switches` in force (older builds, log visibility,
      backfill limit and row delay, auto-pause threshold); kept by :meth:`clear`.

    Time-driven changes (backfill steps, the auto-pause check after a failed run) are replayed in
    time order by :meth:`advance`, which every request calls first.

    :param api_key: the full-access personal API key to seed (``SEED.api_key`` by default).
    :param switches: the switches to start with (today's PostHog by default).
    """

    def __init__(self, api_key: str | None = None, switches: Switches | None = None) -> None:
        self.lock = threading.RLock()
        self.default_api_key = api_key or SEED.api_key
        self.switches = switches or Switches()
        self.clear()

    def clear(self) -> None:
        """Drop every record."""
        with self.lock:
            self.organizations: dict[str, dict[str, Any]] = {}
            self.teams: dict[int, dict[str, Any]] = {}
            self.users: dict[str, dict[str, Any]] = {}
            self.memberships: dict[tuple[str, str], dict[str, Any]] = {}
            self.roles: dict[str, dict[str, Any]] = {}
            self.access_controls: list[dict[str, Any]] = []
            self.api_keys: dict[str, dict[str, Any]] = {}
            self.integrations: dict[int, dict[str, Any]] = {}
            self.batch_exports: dict[str, dict[str, Any]] = {}
            self.runs: dict[str, dict[str, Any]] = {}
            self.backfills: dict[str, dict[str, Any]] = {}
            self.run_outcomes: dict[str, RunOutcome] = {}
            self.run_outcome_queue: dict[str, list[RunOutcome]] = {}
            self.pause_backdates: dict[str | None, float] = {}
            self.logs = LogStore()
            self.dashboards: dict[int, dict[str, Any]] = {}
            self.collaborators: list[dict[str, Any]] = []
            # Runs that will fail and whose auto-pause check (at their end) is still to replay.
            self._unsettled_failures: set[str] = set()

    @staticmethod
    def now() -> datetime:
        """The current time, aware UTC."""
        return datetime.now(timezone.utc)

    # -- helpers for tests -------------------------------------------------------------------

    def add_api_key(
        self,
        scopes: list[str],
        user_uuid: str | None = None,
        scoped_teams: list[int] | None = None,
        *,
        label: str = "Airflow",
        key: str | None = None,
    ) -> str:
        """Create a personal API key.

        :param scopes: e.g. ``["batch_export:read"]``, ``["dashboard:write"]`` or ``["*"]``.
        :param user_uuid: the owner (default: the seeded key owner).
        :param scoped_teams: restrict the key to these team ids (None = all the user's teams).
        :param label: the key's label, shown by ``personal_api_keys/@current/``.
        :param key: the secret (default: a random ``phx_`` key).
        :returns: the new key.
        """
        key = key or "phx_" + secrets.token_hex(20)
        with self.lock:
            owner = user_uuid or SEED.owner_uuid
            if owner not in self.users:
                raise KeyError(f"unknown user {owner}")
            self.api_keys[key] = {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
                "label": label,
                "created_at": self.now(),
                "scopes": list(scopes),
                "user_uuid": owner,
                "scoped_teams": scoped_teams,
                "scoped_organizations": None,
            }
        return key

    def add_dashboard(
        self,
        name: str | None,
        *,
        team_id: int | None = None,
        pinned: bool = False,
        restriction_level: int = 21,
        deleted: bool = False,
        created_by: str | None = None,
        description: str = "",
        tags: list[str] | None = None,
        tiles: list[dict[str, Any]] | None = None,
        creation_mode: str = "default",
    ) -> dict[str, Any]:
        """Store a dashboard and return the live record (ids count up from 1 after a reset).

        :param name: dashboard name (may be None, as in PostHog).
        :param team_id: owning environment (default: team 1).
        :param pinned: whether it is pinned (pinned dashboards list first).
        :param restriction_level: 21 (everyone in the project can edit) or 37 (only collaborators).
        :param deleted: soft-deleted dashboards are hidden from list and retrieve.
        :param created_by: creator's user uuid (default: the key owner).
        :param description: description text.
        :param tags: tag names.
        :param tiles: tile dicts returned by retrieve/create.
        :param creation_mode: ``default``, ``template``, ``duplicate`` or ``unlisted`` (hidden from the list).
        """
        with self.lock:
            dashboard: dict[str, Any] = {
                "id": max(self.dashboards, default=0) + 1,
                "team_id": team_id or SEED.team_id,
                "name": name,
                "description": description,
                "pinned": pinned,
                "created_at": self.now(),
                "created_by": created_by or SEED.owner_uuid,
                "last_accessed_at": None,
                "last_viewed_at": None,
                "is_shared": False,
                "deleted": deleted,
                "creation_mode": creation_mode,
                "filters": {},
                "variables": {},
                "breakdown_colors": [],
                "data_color_theme_id": None,
                "tags": list(tags or []),
                "restriction_level": restriction_level,
                "last_refresh": None,
                "tiles": copy.deepcopy(tiles or []),
            }
            self.dashboards[dashboard["id"]] = dashboard
            return dashboard

    def add_batch_export(
        self,
        name: str,
        destination: dict[str, Any],
        *,
        interval: str = "hour",
        team_id: int | None = None,
        export_id: str | None = None,
        created_at: datetime | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Store a batch export without validation and return the live record.

        :param name: export name.
        :param destination: ``{"type", "config", "integration"}``; secret config values are stored but
            never returned by the API.
        :param interval: ``hour``, ``day``, ``week``, ``every 5 minutes`` or ``every 15 minutes``.
        :param team_id: owning team (default: team 1).
        :param export_id: a fixed id (default: a random UUID).
        :param created_at: creation time (default: now); the list is ordered by it, newest first.
        :param fields: any other stored field, e.g. ``paused=True``, ``model="persons"``.
        """
        with self.lock:
            created_at = created_at or self.now()
            export: dict[str, Any] = {
                "id": export_id or str(uuid.uuid4()),
                "team_id": team_id or SEED.team_id,
                "name": name,
                "model": "events",
                "destination": {"integration": None, **copy.deepcopy(destination)},
                "interval": interval,
                "paused": False,
                "deleted": False,
                "schedule_missing": False,
                "created_at": created_at,
                "last_updated_at": created_at,
                "last_paused_at": None,
                "start_at": None,
                "end_at": None,
                "hogql_query": None,
                "filters": None,
                "timezone": "UTC",
                "offset_day": None,
                "offset_hour": None,
            }
            unknown = set(fields) - set(export)
            if unknown:
                raise TypeError(f"unknown batch export fields: {sorted(unknown)}")
            export.update(fields)
            self.batch_exports[export["id"]] = export
            return export

    def new_tiles(self, insight_names: Iterable[str]) -> list[dict[str, Any]]:
        """Fresh dashboard tiles, one insight each, with ids not used by any stored tile."""
        with self.lock:
            used = [tile["id"] for dashboard in self.dashboards.values() for tile in dashboard["tiles"]]
            first = max(used, default=0) + 1
            return [
                {
                    "id": first + offset,
                    "insight": {"id": first + offset, "short_id": f"ins{first + offset:05d}", "name": name},
                    "text": None,
                    "color": None,
                    "layouts": {},
                }
                for offset, name in enumerate(insight_names)
            ]

    def add_collaborator(self, dashboard_id: int, user_uuid: str, level: int = 37) -> dict[str, Any]:
        """Make a user an explicit collaborator of a dashboard (no validation); returns the record."""
        with self.lock:
            now = self.now()
            record = {
                "id": str(uuid.uuid4()),
                "dashboard_id": dashboard_id,
                "user_uuid": user_uuid,
                "level": level,
                "added_at": now,
                "updated_at": now,
            }
            self.collaborators.append(record)
            return record

    def add_log_entries(self, batch_export_id: str, entries: Iterable[dict[str, Any]]) -> None:
        """Add log entries to a batch export.

        :param batch_export_id: the export (KeyError if unknown).
        :param entries: dicts with ``timestamp`` (datetime or ISO string; naive = UTC; may be in the
            future, then it shows up once that moment passes), ``level``, ``message`` and optional
            ``instance_id`` (a workflow run id), and optional ``visible_at`` (when it becomes
            visible; default: its timestamp plus the seeded delay of :attr:`switches`).
        """
        with self.lock:
            if batch_export_id not in self.batch_exports:
                raise KeyError(f"unknown batch export {batch_export_id}")
            self.logs.add(
                LogEntry(
                    log_source_id=batch_export_id,
                    instance_id=str(entry.get("instance_id") or ""),
                    timestamp=to_datetime(entry["timestamp"]),
                    level=str(entry["level"]).upper(),
                    message=str(entry["message"]),
                    visible_at=to_datetime(entry["visible_at"]) if entry.get("visible_at") else None,
                )
                for entry in entries
            )

    def get_batch_export(self, batch_export_id: str) -> dict[str, Any]:
        """A copy of the stored export (including ``deleted`` and secret config values)."""
        with self.lock:
            return copy.deepcopy(self.batch_exports[batch_export_id])

    def set_run_outcome(
        self,
        batch_export_id: str,
        outcome: str = "completed",
        duration: float = 2.0,
        error_message: str | None = None,
        records: int | None = None,
        times: int | None = None,
    ) -> None:
        """Decide how the export's next runs end (runs already started keep their outcome).

        :param batch_export_id: the export (KeyError if unknown).
        :param outcome: ``"completed"``, ``"failed"`` (non-recoverable), ``"failed_retryable"`` or
            ``"hang"`` (never finishes until cancelled).
        :param duration: seconds from run start to its final status and last log line (longer
            makes runs take longer).
        :param error_message: the error text of a failed run (a Postgres connection error by default).
        :param records: records a completed run exports (default 1000 per hour; 0 logs ``no``).
        :param times: only the next ``times`` runs end so, then the standing outcome applies again;
            None (default) makes this the standing outcome.
        """
        with self.lock:
            if batch_export_id not in self.batch_exports:
                raise KeyError(f"unknown batch export {batch_export_id}")
            chosen = RunOutcome(outcome, duration, error_message, records, times)
            if times is None:
                self.run_outcomes[batch_export_id] = chosen
            else:
                self.run_outcome_queue.setdefault(batch_export_id, []).append(chosen)

    def _next_outcome(self, batch_export_id: str) -> RunOutcome:
        queue = self.run_outcome_queue.get(batch_export_id)
        if queue:
            first = queue[0]
            if first.times == 1:
                queue.pop(0)
            else:
                queue[0] = RunOutcome(
                    first.outcome, first.duration, first.error_message, first.records, (first.times or 2) - 1
                )
            return first
        return self.run_outcomes.get(batch_export_id, RunOutcome())

    def start_run(
        self,
        batch_export_id: str,
        start: datetime | None,
        end: datetime,
        *,
        created_at: datetime | None = None,
        backfill_id: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Start a run of ``[start, end)`` now (or at ``created_at``) and write its log timeline.

        The run ends as :meth:`set_run_outcome` decided (completed after 2 s by default).

        :param batch_export_id: the export.
        :param start: data interval start (None: the one run of an earliest-data backfill).
        :param end: data interval end.
        :param created_at: when the run starts (default: now; seeded history uses past times).
        :param backfill_id: the backfill the run belongs to.
        :param run_id: a fixed run id (default: a random UUID).
        :returns: the stored run.
        """
        with self.lock:
            run = start_run(
                self.logs,
                self.batch_exports[batch_export_id],
                start=start,
                end=end,
                outcome=self._next_outcome(batch_export_id),
                created_at=created_at or self.now(),
                backfill_id=backfill_id,
                run_id=run_id,
            )
            self.runs[run["id"]] = run
            if run["outcome"] == "failed":
                self._unsettled_failures.add(run["id"])
            return run

    def start_backfill(
        self,
        batch_export_id: str,
        start: datetime | None,
        end: datetime | None,
        *,
        backfill_id: str | None = None,
    ) -> dict[str, Any]:
        """Start a backfill workflow of ``[start, end)``: its row and first run come
        ``switches.backfill_row_delay`` seconds later (docs/posthog-api.md §6.9).

        No validation, no concurrency limit and no workflow-id check: the API's are in its handlers.

        :param start: None backfills from the start of the data (one run without an interval start).
        :param end: None (open-ended exports) backfills up to when the row appears.
        :param backfill_id: the row's id (default: a random UUID).
        :returns: the stored backfill (``id``, ``workflow_id``, ``created_at``...).
        """
        with self.lock:
            backfill = backfills.new_backfill(
                self.batch_exports[batch_export_id],
                start,
                end,
                requested_at=self.now(),
                row_delay=self.switches.backfill_row_delay,
                backfill_id=backfill_id,
            )
            self.backfills[backfill["id"]] = backfill
            self.advance()
            return backfill

    def backfill_workflow_running(self, workflow_id: str) -> bool:
        """Whether a backfill workflow with this id is still open (Temporal refuses to start it again)."""
        with self.lock:
            self.advance()
            return any(
                backfill["workflow_id"] == workflow_id and backfills.workflow_is_running(backfill)
                for backfill in self.backfills.values()
            )

    def active_backfills(self, team_id: int) -> int:
        """The team's backfill rows that are Starting or Running (rows not yet created do not count)."""
        with self.lock:
            self.advance()
            now = self.now()
            return sum(
                backfills.is_active(backfill, self.backfill_runs(backfill["id"]), now)
                for backfill in self.backfills.values()
                if backfill["team_id"] == team_id
            )

    def terminate_backfill(self, backfill_id: str) -> None:
        """Terminate a backfill's workflow now: no later run starts and its row keeps its status
        (Starting or Running) for good; a row not created yet never appears.

        :raises KeyError: unknown backfill. :raises ValueError: its workflow is already over.
        """
        with self.lock:
            self.advance()
            backfill = self.backfills[backfill_id]
            if not backfills.workflow_is_running(backfill):
                raise ValueError(f"the workflow of backfill {backfill_id} is already over")
            backfills.terminate(backfill, self.now())

    def auto_pause(self, batch_export_id: str) -> None:
        """Pause the export now as the failure threshold does (docs/posthog-api.md §6.9): paused,
        ``last_paused_at`` set, its Running backfills cancelled, and the WARNING lines written
        (with an empty ``instance_id``: no run's workflow writes them).

        :raises KeyError: unknown batch export.
        """
        with self.lock:
            self.advance()
            self._auto_pause(self.batch_exports[batch_export_id], self.now(), "")

    def advance(self, now: datetime | None = None) -> None:
        """Replay, in time order, what happened up to ``now``: backfill steps (a row appearing, the
        next run starting, the end) and the auto-pause check after each failed run."""
        with self.lock:
            now = now or self.now()
            while (event := self._next_event(now)) is not None:
                event[2]()

    def _next_event(self, now: datetime) -> _Event | None:
        """The earliest event due by ``now``; a failure's check comes before a step at its moment,
        as a run's workflow finishes it before the backfill workflow sees the run end."""
        found: list[_Event] = []
        for run_id in sorted(self._unsettled_failures):
            run = self.runs[run_id]
            at = ends_at(run)
            if run["cancelled_at"] is not None or at is None:
                self._unsettled_failures.discard(run_id)  # cancelled: it never fails
            elif at <= now:
                found.append((at, 0, functools.partial(self._settle_failure, run, at)))
        for backfill in self.backfills.values():
            runs = self.backfill_runs(backfill["id"])
            at = backfills.due(backfill, runs)
            if at is not None and at <= now:
                found.append((at, 1, functools.partial(self._step_backfill, backfill, runs, at)))
        return min(found, key=lambda event: event[:2], default=None)

    def _step_backfill(self, backfill: dict[str, Any], runs: list[dict[str, Any]], at: datetime) -> None:
        export = self.batch_exports[backfill["batch_export_id"]]
        backfills.step(
            backfill,
            runs,
            at,
            functools.partial(self._start_backfill_run, backfill),
            schedule_exists=not (export["schedule_missing"] or export["deleted"]),
            stop_on_failure="backfill-fails" in self.switches,
        )

    def _start_backfill_run(
        self, backfill: dict[str, Any], start: datetime | None, end: datetime, at: datetime
    ) -> dict[str, Any]:
        return self.start_run(
            backfill["batch_export_id"], start, end, created_at=at, backfill_id=backfill["id"]
        )

    def _settle_failure(self, run: dict[str, Any], at: datetime) -> None:
        """``finish_batch_export_run`` of a Failed run: pause the export over the failure threshold."""
        self._unsettled_failures.discard(run["id"])
        threshold = self.switches.auto_pause_threshold
        export_id = run["batch_export_id"]
        recent = sorted(
            (other for other in self.runs.values() if other["batch_export_id"] == export_id),
            key=lambda other: last_updated_at(other, at),
            reverse=True,
        )
        window = [other for other in recent if other["created_at"] <= at][:AUTO_PAUSE_WINDOW]
        if threshold and sum(run_status(other, at) == "Failed" for other in window) >= threshold:
            # After the run's error line and its failure notification.
            self._auto_pause(self.batch_exports[export_id], at + 2 * LINE_AFTER, run["workflow_run_id"])

    def _auto_pause(self, export: dict[str, Any], at: datetime, instance_id: str) -> None:
        """Pause (unless already paused, or the schedule is gone) and cancel the Running backfills."""
        paused = not export["paused"] and not export["schedule_missing"]
        if paused:
            export.update(paused=True, last_paused_at=self.paused_at(export["id"], at), last_updated_at=at)
        running = [
            backfill
            for backfill in self.backfills.values()
            if backfill["batch_export_id"] == export["id"]
            and backfills.is_visible(backfill, at)
            and backfills.backfill_status(backfill, self.backfill_runs(backfill["id"]), at) == "Running"
        ]
        cancelled = 0
        for backfill in sorted(running, key=lambda backfill: backfill["created_at"]):
            if not backfills.workflow_is_running(backfill):
                # Cancelling a terminated workflow raises: the rest stay and nothing is logged.
                cancelled = 0
                break
            backfills.cancel(backfill, self.backfill_runs(backfill["id"]), self.logs, at)
            cancelled += 1
        self.logs.add(auto_pause_entries(export["id"], instance_id, at, paused, cancelled))

    def backfill_runs(self, backfill_id: str) -> list[dict[str, Any]]:
        """The backfill's runs, oldest first."""
        with self.lock:
            return [self.runs[run_id] for run_id in self.backfills[backfill_id]["run_ids"]]

    def visible_logs(self, batch_export_id: str, query: LogQuery) -> list[LogEntry]:
        """The export's log entries matching ``query`` that are visible now, newest first."""
        with self.lock:
            self.advance()
            delay = self.switches.log_delay
            return self.logs.query(
                batch_export_id, query, self.now(), self._log_delay if delay else None, delay
            )

    def _log_delay(self, entry: LogEntry) -> float:
        """A reproducible delay in ``[0, log_delay]`` seconds from the seed and the entry."""
        key = f"{self.switches.seed}|{entry.log_source_id}|{entry.instance_id}|{entry.timestamp.isoformat()}"
        digest = hashlib.blake2b(f"{key}|{entry.message}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 * self.switches.log_delay

    def set_switches(
        self,
        old_builds: Iterable[str] | None = None,
        *,
        log_delay: float | None = None,
        seed: int | None = None,
        max_concurrent_backfills: int | None = None,
        backfill_row_delay: float | None = None,
        auto_pause_threshold: int | None = None,
    ) -> None:
        """Change the switches; None leaves a setting as it is (:meth:`reset` restores the start's).

        :param old_builds: exactly these older-build switches on (names in ``switches.OLD_BUILDS``).
        :param log_delay: entries become visible up to this many seconds late; 0 for in-order.
        :param seed: the seed of those delays.
        :param max_concurrent_backfills: Starting/Running backfills per team before a 429.
        :param backfill_row_delay: seconds until a started backfill's row exists; 0 at once.
        :param auto_pause_threshold: Failed runs among an export's last 50 that pause it; 0 never.
        """
        with self.lock:
            current = self.switches

            def keep(value: Any, name: str) -> Any:
                return getattr(current, name) if value is None else value

            self.switches = Switches(
                keep(old_builds, "old_builds"),
                log_delay=keep(log_delay, "log_delay"),
                seed=keep(seed, "seed"),
                max_concurrent_backfills=keep(max_concurrent_backfills, "max_concurrent_backfills"),
                backfill_row_delay=keep(backfill_row_delay, "backfill_row_delay"),
                auto_pause_threshold=keep(auto_pause_threshold, "auto_pause_threshold"),
            )

    def shift_last_paused_at(self, batch_export_id: str, seconds: float) -> None:
        """Move a paused export's ``last_paused_at`` back by ``seconds``, so a short pause unpaused
        with a backfill covers whole intervals (KeyError if unknown, ValueError if never paused)."""
        with self.lock:
            export = self.batch_exports[batch_export_id]
            if export["last_paused_at"] is None:
                raise ValueError(f"batch export {batch_export_id} has never been paused")
            export["last_paused_at"] -= timedelta(seconds=seconds)

    def backdate_pauses(self, seconds: float, batch_export_id: str | None = None) -> None:
        """Record every later pause (of one export, or of all) ``seconds`` before it happens.

        :param seconds: how far back; 0 stops backdating.
        :param batch_export_id: the export; None for every export.
        """
        with self.lock:
            if batch_export_id is not None and batch_export_id not in self.batch_exports:
                raise KeyError(f"unknown batch export {batch_export_id}")
            self.pause_backdates[batch_export_id] = float(seconds)

    def paused_at(self, batch_export_id: str, now: datetime) -> datetime:
        """The ``last_paused_at`` a pause at ``now`` records (see :meth:`backdate_pauses`)."""
        seconds = self.pause_backdates.get(batch_export_id, self.pause_backdates.get(None, 0.0))
        return now - timedelta(seconds=seconds)

    def set_feature_flag(self, flag: str, enabled: bool = True, team_id: int = SEED.team_id) -> None:
        """Turn a team feature flag on or off.

        :param flag: ``high-frequency-batch-exports`` (sub-hour intervals), ``hogql-batch-exports``,
            ``backfill-workflows-destination`` or ``batch-export-earliest-backfill``.
        :param enabled: on or off.
        :param team_id: the team.
        """
        with self.lock:
            flags = self.teams[team_id]["flags"]
            if enabled:
                flags.add(flag)
            else:
                flags.discard(flag)

    def set_access_control(self, enabled: bool, organization_id: str = SEED.organization_id) -> None:
        """Add or remove the paid ``access_control`` feature of the organization's
        ``available_product_features``; without it every dashboard acts as level 21 and stored
        access-control rules are ignored (docs/posthog-api.md §7.4)."""
        with self.lock:
            features = self.organizations[organization_id]["features"]
            if enabled and ACCESS_CONTROL not in features:
                features.append(ACCESS_CONTROL)
            elif not enabled and ACCESS_CONTROL in features:
                features.remove(ACCESS_CONTROL)

    def set_product_features(self, features: list[str], organization_id: str = SEED.organization_id) -> None:
        """Exactly these ``available_product_features`` keys for the organization (e.g.
        ``["access_control"]`` drops ``role_based_access``; ``[]`` drops both)."""
        with self.lock:
            if organization_id not in self.organizations:
                raise KeyError(f"unknown organization {organization_id}")
            if isinstance(features, str) or not all(isinstance(key, str) for key in features):
                raise ValueError("features must be a list of feature keys")
            self.organizations[organization_id]["features"] = list(dict.fromkeys(features))

    def has_feature(self, organization_id: str, key: str) -> bool:
        """Whether the organization has the product feature; the ``no-access-control`` switch
        takes ``access_control`` away from every organization (the stored list is unchanged)."""
        return key in self.product_features(organization_id)

    def product_features(self, organization_id: str) -> list[str]:
        """The organization's feature keys as the API shows them (see :meth:`has_feature`)."""
        features = list(self.organizations[organization_id]["features"])
        if "no-access-control" in self.switches and ACCESS_CONTROL in features:
            features.remove(ACCESS_CONTROL)
        return features

    def add_organization(
        self,
        name: str,
        *,
        slug: str | None = None,
        features: Iterable[str] = (ACCESS_CONTROL,),
        organization_id: str | None = None,
    ) -> dict[str, Any]:
        """Store an organization (no projects, no members) and return the live record."""
        with self.lock:
            organization: dict[str, Any] = {
                "id": organization_id or str(uuid.uuid4()),
                "name": name,
                "slug": slug or name.lower().replace(" ", "-"),
                "created_at": self.now(),
                "features": list(features),
            }
            self.organizations[organization["id"]] = organization
            return organization

    def add_membership(
        self, organization_id: str, user_uuid: str, level: int = MEMBER, *, membership_id: str | None = None
    ) -> dict[str, Any]:
        """Make a user a member of an organization (replacing a membership there) and return it."""
        with self.lock:
            now = self.now()
            membership = {
                "id": membership_id or str(uuid.uuid4()),
                "organization_id": organization_id,
                "user_uuid": user_uuid,
                "level": level,
                "joined_at": now,
                "updated_at": now,
            }
            self.memberships[(organization_id, user_uuid)] = membership
            return membership

    def add_members(
        self, count: int, *, level: int = MEMBER, organization_id: str = SEED.organization_id
    ) -> list[dict[str, Any]]:
        """Add ``count`` new users (``member-<n>@example.com``) as members of the organization, so
        the members list has pages; they join one second apart. Returns their memberships."""
        with self.lock:
            if organization_id not in self.organizations:
                raise KeyError(f"unknown organization {organization_id}")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"count must be an integer >= 0, not {count!r}")
            team_id = next(
                (team["id"] for team in self.teams.values() if team["organization_id"] == organization_id),
                None,
            )
            added: list[dict[str, Any]] = []
            now = self.now()
            for _ in range(count):
                number = max((user["id"] for user in self.users.values()), default=0) + 1
                user_uuid = str(uuid.uuid5(_MEMBER_NAMESPACE, f"user-{number}"))
                self.users[user_uuid] = user_record(
                    number, user_uuid, f"Member {number}", f"member-{number}@example.com", team_id
                )
                membership = self.add_membership(
                    organization_id,
                    user_uuid,
                    level,
                    membership_id=str(uuid.uuid5(_MEMBER_NAMESPACE, f"membership-{number}")),
                )
                membership["joined_at"] = membership["updated_at"] = now + timedelta(seconds=len(added))
                added.append(membership)
            return added

    def set_membership_level(
        self, level: int, user_uuid: str | None = None, organization_id: str = SEED.organization_id
    ) -> None:
        """Change a member's level: 1 member, 8 admin, 15 owner (default user: the seeded key owner,
        so ``set_membership_level(1)`` makes the seeded key a plain member's)."""
        with self.lock:
            if level not in (1, 8, 15) or isinstance(level, bool):
                raise ValueError(f"level must be 1 (member), 8 (admin) or 15 (owner), not {level!r}")
            membership = self.memberships.get((organization_id, user_uuid or SEED.owner_uuid))
            if membership is None:
                raise KeyError(f"{user_uuid or SEED.owner_uuid} is not a member of {organization_id}")
            membership.update(level=level, updated_at=self.now())

    def add_access_control(
        self,
        dashboard_id: int,
        access_level: str,
        *,
        organization_member: str | None = None,
        role: str | None = None,
    ) -> dict[str, Any]:
        """Store (or replace) a dashboard access-control rule without validation: a member rule
        (``organization_member`` = membership id), a role rule, or the dashboard's default rule."""
        with self.lock:
            now = self.now()
            key = {
                "resource": "dashboard",
                "resource_id": str(dashboard_id),
                "organization_member": organization_member,
                "role": role,
            }
            rule = next((rule for rule in self.access_controls if key.items() <= rule.items()), None)
            if rule is None:
                rule = {**key, "created_at": now}
                self.access_controls.append(rule)
            rule.update(access_level=access_level, updated_at=now)
            return rule

    def delete_schedule(self, batch_export_id: str) -> None:
        """Simulate a missing Temporal schedule: pause/unpause of this export then answer 400."""
        with self.lock:
            self.batch_exports[batch_export_id]["schedule_missing"] = True

    # -- lookups used by the handlers --------------------------------------------------------

    def runs_of(self, batch_export_id: str) -> list[dict[str, Any]]:
        """The export's runs, newest first."""
        with self.lock:
            self.advance()
            runs = [run for run in self.runs.values() if run["batch_export_id"] == batch_export_id]
            return sorted(runs, key=lambda run: run["created_at"], reverse=True)

    def membership(self, user_uuid: str, organization_id: str) -> dict[str, Any] | None:
        """The user's membership of the organization, or None."""
        return self.memberships.get((organization_id, user_uuid))

    def membership_level(self, user_uuid: str, team_id: int) -> int | None:
        """The user's level in the team's organization, or None when not a member."""
        membership = self.membership(user_uuid, self.teams[team_id]["organization_id"])
        return None if membership is None else membership["level"]

    def is_project_admin(self, user_uuid: str, team_id: int) -> bool:
        """Organization admins and owners administer every project of the organization."""
        return (self.membership_level(user_uuid, team_id) or 0) >= ADMIN

    def project_team_ids(self, team_id: int) -> set[int]:
        """Every environment (team) of the team's project."""
        project_id = self.teams[team_id]["project_id"]
        return {team["id"] for team in self.teams.values() if team["project_id"] == project_id}
