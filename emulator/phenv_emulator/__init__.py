"""A local PostHog-compatible API server, standard library only, for tests, demos and offline DAG runs.

    from phenv_emulator import SEED, PostHogEmulator

    with PostHogEmulator() as emu:          # free port, seeded data
        emu.url, emu.api_key, emu.project_id
        emu.faults.add("status", status=429, retry_after=1, path="/pause")
        emu.state.set_run_outcome(SEED.s3_export_id, "failed", duration=0.5)

Command line: ``python -m phenv_emulator --port 8010``.
Behaviour follows PostHog's source as summarised in the project's ``docs/posthog-api.md``: today's
PostHog by default (log lines visible a few seconds late and out of order, backfills of whole
intervals, current log wording), and older builds one switch at a time::

    PostHogEmulator(builds=["level-list"], log_delay=0)      # or --old-build level-list --log-delay 0
    emu.state.set_switches(["no-retry-after"])                # or POST /_emulator/switches

The switches are listed in ``store/switches.py``.

Layout: ``web/`` serves HTTP (server, routing and auth, errors, faults, throttles, ``/_emulator/``
control); ``store/`` holds the data and its seed; ``batch_exports/`` and ``dashboards/`` hold each
resource's endpoints and declare its routes, which ``web.api`` puts together. No module imports
back into one that imports it (``tests/emulator/test_import_graph.py``).
"""

__version__ = "0.1.0"

from .store.seed import SEED, Seed
from .web.request_log import RecordedRequest
from .web.server import PostHogEmulator

__all__ = ["SEED", "PostHogEmulator", "RecordedRequest", "Seed", "__version__"]
