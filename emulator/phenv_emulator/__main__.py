"""``python -m phenv_emulator --port 8010``: serve until SIGTERM or SIGINT.

The first output line is ``PostHog emulator listening on <url>  api_key=<key>  project_id=<id>``;
the second lists the seeded batch export ids. A guide follows: the users and their access to the
project, the dashboards, the keys, the control endpoints, and lines to paste into a shell:
``export POSTHOG_EMULATOR_URL=...`` and, last, ``export AIRFLOW_CONN_POSTHOG_DEFAULT='...'``.

``--key phx_readonly=batch_export:read,dashboard:read`` (repeatable) adds a personal API key with
those scopes, kept across ``POST /_emulator/reset``.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import threading
from typing import Any

from .store.seed import SEED
from .store.switches import (
    AUTO_PAUSE_WINDOW,
    DEFAULT_AUTO_PAUSE_THRESHOLD,
    DEFAULT_BACKFILL_ROW_DELAY,
    DEFAULT_LOG_DELAY,
    DEFAULT_MAX_CONCURRENT_BACKFILLS,
    OLD_BUILDS,
)
from .web.control import users_summary
from .web.server import PostHogEmulator

_SCOPE = re.compile(r"^(\*|[a-z_]+:(read|write))$")
#: The options passed on to :class:`PostHogEmulator` under their own names.
_EMULATOR_OPTIONS = (
    "host",
    "port",
    "api_key",
    "rate_limit",
    "log_requests",
    "log_delay",
    "seed",
    "max_concurrent_backfills",
    "backfill_row_delay",
    "auto_pause_threshold",
    "backdate_pauses",
)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, start the emulator, print the banner and wait for a signal.

    :param argv: command-line arguments (``sys.argv[1:]`` by default).
    """
    parser = argparse.ArgumentParser(
        prog="python -m phenv_emulator",
        description="Serve a local PostHog-compatible API until SIGTERM or SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8010, help="port to bind; 0 picks a free one (default 8010)"
    )
    parser.add_argument("--api-key", help=f"the seeded full-access personal API key (default {SEED.api_key})")
    parser.add_argument(
        "--rate-limit", action="store_true", help="apply PostHog's 480/min and 4800/h throttles"
    )
    parser.add_argument("--log-requests", action="store_true", help="print an access log line per request")
    parser.add_argument(
        "--old-build",
        action="append",
        default=[],
        choices=sorted(OLD_BUILDS),
        metavar="SWITCH",
        help="play an older PostHog build in one respect (repeatable): "
        + "; ".join(f"{name}: {what}" for name, what in OLD_BUILDS.items()),
    )
    parser.add_argument(
        "--log-delay",
        type=float,
        default=DEFAULT_LOG_DELAY,
        help="log entries become visible up to this many seconds late, out of order "
        f"(default {DEFAULT_LOG_DELAY:g}; 0 for in-order)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the log delays (default 0)")
    parser.add_argument(
        "--max-concurrent-backfills",
        type=int,
        default=DEFAULT_MAX_CONCURRENT_BACKFILLS,
        help=f"running backfills per team before a 429 (default {DEFAULT_MAX_CONCURRENT_BACKFILLS})",
    )
    parser.add_argument(
        "--backfill-row-delay",
        type=float,
        default=DEFAULT_BACKFILL_ROW_DELAY,
        metavar="SECONDS",
        help="a started backfill's row (and first run) exists this much later, as PostHog's workflow "
        f"creates it (default {DEFAULT_BACKFILL_ROW_DELAY:g}; 0 for at once)",
    )
    parser.add_argument(
        "--auto-pause-threshold",
        type=int,
        default=DEFAULT_AUTO_PAUSE_THRESHOLD,
        metavar="RUNS",
        help=f"Failed runs among an export's last {AUTO_PAUSE_WINDOW} that pause it automatically "
        f"(default {DEFAULT_AUTO_PAUSE_THRESHOLD}; 0 never)",
    )
    parser.add_argument(
        "--backdate-pauses",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="record every pause this much earlier, so unpausing with a backfill after a short pause "
        "still backfills whole intervals (e.g. 7200 for two hourly runs)",
    )
    add_key_arguments(parser)
    args = parser.parse_args(argv)
    extra_keys = parse_keys(parser, args.key)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    # Every option but --old-build (builds=) and --key is the PostHogEmulator argument of its name.
    settings = {name: getattr(args, name) for name in _EMULATOR_OPTIONS}
    emulator = _KeepingKeys(extra_keys, builds=args.old_build, **settings).start()
    print(
        f"PostHog emulator listening on {emulator.url}  api_key={emulator.api_key}  "
        f"project_id={emulator.project_id}",
        flush=True,
    )
    print(
        f"  batch exports: s3={SEED.s3_export_id} bigquery={SEED.bigquery_export_id} "
        f"postgres_failing={SEED.postgres_export_id} paused={SEED.paused_export_id} "
        f"daily={SEED.daily_export_id} weekly={SEED.weekly_export_id}",
        flush=True,
    )
    print(guide(emulator, extra_keys), flush=True)
    try:
        stopping.wait()
    finally:
        emulator.stop()


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    """``--key KEY=SCOPES``: extra personal API keys, e.g. to see what a read-only key gets."""
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY=SCOPES",
        help="add a personal API key with comma-separated scopes, owned by the seeded admin, e.g. "
        "--key phx_readonly=batch_export:read,dashboard:read (repeatable; '*' means every scope)",
    )


def parse_keys(parser: argparse.ArgumentParser, values: list[str]) -> dict[str, list[str]]:
    """``KEY=SCOPES`` arguments as ``{key: [scopes]}``; a malformed one stops with a usage error."""
    keys: dict[str, list[str]] = {}
    for value in values:
        key, _, scopes_text = value.partition("=")
        scopes = [scope.strip() for scope in scopes_text.split(",") if scope.strip()]
        if not key.startswith("phx_") or len(key) < 8:
            parser.error(
                f"--key {value!r}: the key must start with phx_ and have at least 4 more characters."
            )
        if not scopes or not all(_SCOPE.match(scope) for scope in scopes):
            parser.error(
                f"--key {value!r}: expected KEY=SCOPES with scopes such as batch_export:read, "
                "dashboard:write or *, separated by commas."
            )
        keys[key] = scopes
    return keys


class _KeepingKeys(PostHogEmulator):
    """The emulator with the ``--key`` keys, added again after every reset."""

    def __init__(self, extra_keys: dict[str, list[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.extra_keys = extra_keys
        self._add_keys()

    def reset(self) -> None:
        super().reset()
        self._add_keys()

    def _add_keys(self) -> None:
        for key, scopes in self.extra_keys.items():
            self.state.add_api_key(scopes, key=key, label=f"--key {key[:8]}…")


def guide(emulator: PostHogEmulator, extra_keys: dict[str, list[str]]) -> str:
    """What there is to explore, and the line that points Airflow at this emulator."""
    state = emulator.state
    lines = [f"  users (project {emulator.project_id} = {state.teams[SEED.team_id]['name']}):"]
    for user in users_summary(state):
        access = user["project_access"] or "no access (another organization)"
        lines.append(f"    {user['uuid']}  {user['email']:<18} {access}")
    with state.lock:
        project_teams = state.project_team_ids(SEED.team_id)
        emails = {uuid: user["email"] for uuid, user in state.users.items()}
        lines.append("  dashboards (id, restriction level, collaborators):")
        for dashboard in state.dashboards.values():
            if dashboard["deleted"] or dashboard["team_id"] not in project_teams:
                continue
            editors = [
                emails.get(c["user_uuid"], c["user_uuid"])
                for c in state.collaborators
                if c["dashboard_id"] == dashboard["id"]
            ]
            lines.append(
                f"    {dashboard['id']:>3}  {dashboard['name']!r:<20} level {dashboard['restriction_level']}"
                + (f"  collaborators: {', '.join(editors)}" if editors else "")
            )
    lines.append("  personal API keys:")
    lines.append(f"    {emulator.api_key}  *")
    for key, scopes in extra_keys.items():
        lines.append(f"    {key}  {','.join(scopes)}")
    control = f"{emulator.url}/_emulator"
    lines += [
        f"  control: GET {control}/state | GET, DELETE {control}/requests | POST {control}/reset",
        f'           POST {control}/faults (e.g. {{"kind": "status", "status": 429}})',
        "Point Airflow at it (paste into the shell that runs Airflow):",
        f"export POSTHOG_EMULATOR_URL={emulator.url}",
        f"export AIRFLOW_CONN_POSTHOG_DEFAULT='{connection_json(emulator)}'",
    ]
    return "\n".join(lines)


def connection_json(emulator: PostHogEmulator, api_key: str | None = None) -> str:
    """The ``AIRFLOW_CONN_POSTHOG_DEFAULT`` value (JSON form) for this emulator."""
    return json.dumps(
        {
            "conn_type": "posthog",
            "host": emulator.url,
            "password": api_key or emulator.api_key,
            "extra": {"project_id": str(emulator.project_id)},
        }
    )


if __name__ == "__main__":
    main()
