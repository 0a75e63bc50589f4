"""The emulator's in-memory records, plus the helpers tests use to arrange data.

Every request handler runs while holding :attr:`Records.lock`, and so do the public helpers,
so tests may call them while the server is serving. Records are plain dicts; the attributes below
are documented so tests can read them directly (hold the lock when mutating them by hand).
"""

from __future__ import annotations

import copy
import secrets
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from ..batch_exports.runs import RunOutcome, start_run
from ..web.fields import to_datetime
from .log_store import LogEntry, LogStore
from .seed import ADMIN, SEED


class Records:
    """All emulated PostHog data (:class:`~.state.EmulatorState` starts it from the seed).

    Attributes (all keyed as noted):

    - ``organizations`` — org id → ``{id, name, access_control}`` (``access_control`` is the paid
      feature that makes dashboard restriction levels effective).
    - ``teams`` — team id → ``{id, project_id, organization_id, name, flags}``.
    - ``users`` — user uuid → UserBasic fields plus ``current_team_id``.
    - ``memberships`` — ``(org id, user uuid)`` → membership level (1 member, 8 admin).
    - ``api_keys`` — key → ``{scopes, user_uuid, scoped_teams}``.
    - ``integrations`` — integration id → ``{id, kind, team_id}``.
    - ``batch_exports`` — export id → stored export (secrets included, ``deleted`` flag).
    - ``runs`` / ``backfills`` — id → stored run / backfill.
    - ``run_outcomes`` — export id → :class:`RunOutcome` for its next runs.
    - ``logs`` — the :class:`LogStore` of batch export log entries.
    - ``dashboards`` — dashboard id → stored dashboard (``tiles`` included, ``deleted`` flag).
    - ``collaborators`` — list of ``{id, dashboard_id, user_uuid, level, added_at, updated_at}``.

    :param api_key: the full-access personal API key to seed (``SEED.api_key`` by default).
    """

    def __init__(self, api_key: str | None = None) -> None:
        self.lock = threading.RLock()
        self.default_api_key = api_key or SEED.api_key
        self.clear()

    def clear(self) -> None:
        """Drop every record."""
        with self.lock:
            self.organizations: dict[str, dict[str, Any]] = {}
            self.teams: dict[int, dict[str, Any]] = {}
            self.users: dict[str, dict[str, Any]] = {}
            self.memberships: dict[tuple[str, str], int] = {}
            self.api_keys: dict[str, dict[str, Any]] = {}
            self.integrations: dict[int, dict[str, Any]] = {}
            self.batch_exports: dict[str, dict[str, Any]] = {}
            self.runs: dict[str, dict[str, Any]] = {}
            self.backfills: dict[str, dict[str, Any]] = {}
            self.run_outcomes: dict[str, RunOutcome] = {}
            self.logs = LogStore()
            self.dashboards: dict[int, dict[str, Any]] = {}
            self.collaborators: list[dict[str, Any]] = []

    @staticmethod
    def now() -> datetime:
        """The current time, aware UTC."""
        return datetime.now(timezone.utc)

    # -- helpers for tests -------------------------------------------------------------------

    def add_api_key(
        self, scopes: list[str], user_uuid: str | None = None, scoped_teams: list[int] | None = None
    ) -> str:
        """Create a personal API key.

        :param scopes: e.g. ``["batch_export:read"]``, ``["dashboard:write"]`` or ``["*"]``.
        :param user_uuid: the owner (default: the seeded key owner).
        :param scoped_teams: restrict the key to these team ids (None = all the user's teams).
        :returns: the new key.
        """
        key = "phx_" + secrets.token_hex(20)
        with self.lock:
            owner = user_uuid or SEED.owner_uuid
            if owner not in self.users:
                raise KeyError(f"unknown user {owner}")
            self.api_keys[key] = {"scopes": list(scopes), "user_uuid": owner, "scoped_teams": scoped_teams}
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
            ``instance_id`` (the run id).
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
    ) -> None:
        """Decide how the export's next runs end.

        :param batch_export_id: the export (KeyError if unknown).
        :param outcome: ``"completed"`` or ``"failed"``.
        :param duration: seconds from run start to its final status and last log line.
        :param error_message: the error text of a failed run (a Postgres connection error by default).
        """
        with self.lock:
            if batch_export_id not in self.batch_exports:
                raise KeyError(f"unknown batch export {batch_export_id}")
            self.run_outcomes[batch_export_id] = RunOutcome(outcome, duration, error_message)

    def start_run(
        self,
        batch_export_id: str,
        start: datetime,
        end: datetime,
        *,
        created_at: datetime | None = None,
        backfill_id: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Start a run of ``[start, end)`` now (or at ``created_at``) and write its log timeline.

        The run ends as :meth:`set_run_outcome` decided (completed after 2 s by default).

        :param batch_export_id: the export.
        :param start: data interval start.
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
                outcome=self.run_outcomes.get(batch_export_id, RunOutcome()),
                created_at=created_at or self.now(),
                backfill_id=backfill_id,
                run_id=run_id,
            )
            self.runs[run["id"]] = run
            return run

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
        """Turn the paid access-control feature on or off; when off every dashboard acts as level 21."""
        with self.lock:
            self.organizations[organization_id]["access_control"] = enabled

    def delete_schedule(self, batch_export_id: str) -> None:
        """Simulate a missing Temporal schedule: pause/unpause of this export then answer 400."""
        with self.lock:
            self.batch_exports[batch_export_id]["schedule_missing"] = True

    # -- lookups used by the handlers --------------------------------------------------------

    def runs_of(self, batch_export_id: str) -> list[dict[str, Any]]:
        """The export's runs, newest first."""
        runs = [run for run in self.runs.values() if run["batch_export_id"] == batch_export_id]
        return sorted(runs, key=lambda run: run["created_at"], reverse=True)

    def membership_level(self, user_uuid: str, team_id: int) -> int | None:
        """The user's level in the team's organization, or None when not a member."""
        return self.memberships.get((self.teams[team_id]["organization_id"], user_uuid))

    def is_project_admin(self, user_uuid: str, team_id: int) -> bool:
        """Organization admins and owners administer every project of the organization."""
        return (self.membership_level(user_uuid, team_id) or 0) >= ADMIN

    def project_team_ids(self, team_id: int) -> set[int]:
        """Every environment (team) of the team's project."""
        project_id = self.teams[team_id]["project_id"]
        return {team["id"] for team in self.teams.values() if team["project_id"] == project_id}
