"""``python -m airflow_provider_phenv.emulator --port 8010``: serve until SIGTERM or SIGINT.

The first output line is ``PostHog emulator listening on <url>  api_key=<key>  project_id=<id>``;
the second lists the seeded batch export ids.
"""

from __future__ import annotations

import argparse
import signal
import threading

from .store.seed import SEED
from .store.switches import DEFAULT_LOG_DELAY, DEFAULT_MAX_CONCURRENT_BACKFILLS, OLD_BUILDS
from .web.server import PostHogEmulator


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, start the emulator, print the banner and wait for a signal.

    :param argv: command-line arguments (``sys.argv[1:]`` by default).
    """
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_phenv.emulator",
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
        "--backdate-pauses",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="record every pause this much earlier, so unpausing with a backfill after a short pause "
        "still backfills whole intervals (e.g. 7200 for two hourly runs)",
    )
    args = parser.parse_args(argv)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    emulator = PostHogEmulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        rate_limit=args.rate_limit,
        log_requests=args.log_requests,
        builds=args.old_build,
        log_delay=args.log_delay,
        seed=args.seed,
        max_concurrent_backfills=args.max_concurrent_backfills,
        backdate_pauses=args.backdate_pauses,
    ).start()
    print(
        f"PostHog emulator listening on {emulator.url}  api_key={emulator.api_key}  "
        f"project_id={emulator.project_id}",
        flush=True,
    )
    print(
        f"  batch exports: s3={SEED.s3_export_id} bigquery={SEED.bigquery_export_id} "
        f"postgres_failing={SEED.postgres_export_id} paused={SEED.paused_export_id}",
        flush=True,
    )
    try:
        stopping.wait()
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
