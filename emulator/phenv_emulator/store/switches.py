"""Older-build switches and the other knobs that choose *which* PostHog the emulator plays.

By default the emulator plays today's PostHog (docs/posthog-api.md, each topic section). Self-hosted users run
older builds, so each switch below brings back one older behaviour, independently of the others:

- ``level-list`` (§6.3): the logs ``level`` parameter is a list field: ``?level=INFO,ERROR`` is
  one value matching nothing, repeated ``level=`` parameters work.
- ``no-retry-after`` (§3): 429 throttled answers carry no ``Retry-After`` header.
- ``projects-only-collaborators`` (§1): collaborator endpoints exist only under
  ``/api/projects/``; under ``/api/environments/`` they are 404.
- ``environments-redirect`` (§1): ``/api/environments/*`` answers 307 to ``/api/projects/*``.
- ``internal-test-scope`` (§2.2): ``test``, ``run_test_step`` and ``run_test_step_new`` need the
  ``INTERNAL`` scope, which no personal API key has (403).
- ``logs-no-key-scope`` (§2.2): ``logs`` derives no key scope (403 for every key).
- ``no-access-control`` (§7.3, §7.4): every organization lacks the paid ``access_control``
  feature: it is missing from ``available_product_features``, the effective restriction is always
  21 (every collaborator add is 400) and stored access-control rules are ignored (listed as
  ``[]``). ``state.set_access_control(False)`` / ``state.set_product_features([...])`` do the same
  to one organization's stored features.
- ``backfill-fails`` (§6.9): a backfill stops at its first failed run and ends Failed (today's
  workflow goes on and can end Completed).
- ``unpause-null-500`` (§6.5): unpausing with ``backfill`` an export that was never paused (null
  ``last_paused_at``) answers 500 after the unpause is saved (today's backfills from the start of
  the data).
"""

from __future__ import annotations

from collections.abc import Iterable

OLD_BUILDS: dict[str, str] = {
    "level-list": "logs 'level' is a list field: repeat level=, a comma list matches nothing (§6.3)",
    "no-retry-after": "429 throttled answers without Retry-After (§3)",
    "projects-only-collaborators": "collaborators only under /api/projects/ (§1)",
    "environments-redirect": "307 from /api/environments/* to /api/projects/* (§1)",
    "internal-test-scope": "destination test endpoints need the INTERNAL scope: 403 for every key (§2.2)",
    "logs-no-key-scope": "logs refuse personal API keys: 403 (§2.2)",
    "no-access-control": "no paid access control: effective restriction always 21 (§7.3)",
    "backfill-fails": "a backfill stops at its first failed run and ends Failed (§6.9)",
    "unpause-null-500": "unpause with backfill of a never-paused export: 500 after saving (§6.5)",
}
#: Default seconds an entry may become visible after its timestamp (out-of-order visibility, §6.3).
DEFAULT_LOG_DELAY = 3.0
#: Default number of Starting/Running backfills a team may have (429 beyond it, §3).
DEFAULT_MAX_CONCURRENT_BACKFILLS = 3
#: Default seconds between starting a backfill and its row (and first run) existing (§6.9).
DEFAULT_BACKFILL_ROW_DELAY = 2.0
#: Default number of Failed runs among an export's last :data:`AUTO_PAUSE_WINDOW` that pauses it (§6.9).
DEFAULT_AUTO_PAUSE_THRESHOLD = 10
#: How many of an export's most recently updated runs the auto-pause check counts (§6.9).
AUTO_PAUSE_WINDOW = 50


def check_old_builds(names: Iterable[str]) -> frozenset[str]:
    """The names as a set; ValueError naming the unknown ones and the known ones."""
    if isinstance(names, str):
        names = [names]
    chosen = frozenset(names)
    unknown = sorted(chosen - set(OLD_BUILDS))
    if unknown:
        raise ValueError(f"unknown old-build switch(es) {unknown}; expected some of {sorted(OLD_BUILDS)}")
    return chosen


class Switches:
    """The older-build switches that are on, plus the log-visibility, backfill and auto-pause knobs.

    :param old_builds: switch names from :data:`OLD_BUILDS` to turn on.
    :param log_delay: entries become visible 0 to ``log_delay`` seconds after their timestamp
        (a seeded, reproducible spread); 0 makes visibility follow timestamps exactly.
    :param seed: the seed of that spread.
    :param max_concurrent_backfills: Starting/Running backfills a team may have.
    :param backfill_row_delay: seconds from starting a backfill until its row exists (its first
        run starts then); 0 makes the row visible in the same request.
    :param auto_pause_threshold: Failed runs among an export's last 50 that pause it automatically
        (1-50); 0 never pauses.
    """

    def __init__(
        self,
        old_builds: Iterable[str] = (),
        *,
        log_delay: float = DEFAULT_LOG_DELAY,
        seed: int = 0,
        max_concurrent_backfills: int = DEFAULT_MAX_CONCURRENT_BACKFILLS,
        backfill_row_delay: float = DEFAULT_BACKFILL_ROW_DELAY,
        auto_pause_threshold: int = DEFAULT_AUTO_PAUSE_THRESHOLD,
    ) -> None:
        self.old_builds = check_old_builds(old_builds)
        self.log_delay = _non_negative("log_delay", log_delay)
        self.seed = int(seed)
        self.max_concurrent_backfills = int(
            _non_negative("max_concurrent_backfills", max_concurrent_backfills)
        )
        self.backfill_row_delay = _non_negative("backfill_row_delay", backfill_row_delay)
        self.auto_pause_threshold = int(_non_negative("auto_pause_threshold", auto_pause_threshold))
        if self.auto_pause_threshold > AUTO_PAUSE_WINDOW:
            raise ValueError(f"auto_pause_threshold must be at most {AUTO_PAUSE_WINDOW}")

    def __contains__(self, name: object) -> bool:
        if name not in OLD_BUILDS:
            raise ValueError(f"unknown old-build switch {name!r}")
        return name in self.old_builds

    def copy(self) -> Switches:
        """An independent copy."""
        return Switches(
            self.old_builds,
            log_delay=self.log_delay,
            seed=self.seed,
            max_concurrent_backfills=self.max_concurrent_backfills,
            backfill_row_delay=self.backfill_row_delay,
            auto_pause_threshold=self.auto_pause_threshold,
        )

    def as_json(self) -> dict[str, object]:
        """The settings as the control API shows them."""
        return {
            "old_builds": sorted(self.old_builds),
            "log_delay": self.log_delay,
            "seed": self.seed,
            "max_concurrent_backfills": self.max_concurrent_backfills,
            "backfill_row_delay": self.backfill_row_delay,
            "auto_pause_threshold": self.auto_pause_threshold,
        }


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, not {value!r}")
    return float(value)
