"""The batch export routes, fixed segments (``test``, ``run_test_step_new``) before ``{id}`` as in DRF."""

from __future__ import annotations

from ..web.routing import detail_route, route
from . import export_views as exports
from . import run_views as runs

SCOPE = "batch_export"
_EXPORT = r"batch_exports/(?P<export_id>[^/]+)"
_RUN = rf"{_EXPORT}/runs/(?P<run_id>[^/]+)"
_BACKFILL = rf"{_EXPORT}/backfills/(?P<backfill_id>[^/]+)"

ROUTES = (
    route(SCOPE, "batch_exports", GET=exports.list_batch_exports, POST=exports.create_batch_export),
    route(SCOPE, "batch_exports/test", "test_steps", GET=exports.destination_test_steps),
    route(SCOPE, "batch_exports/run_test_step_new", "test_steps", POST=exports.run_test_step_new),
    detail_route(
        SCOPE,
        _EXPORT,
        exports.retrieve_batch_export,
        exports.update_batch_export,
        exports.delete_batch_export,
    ),
    route(SCOPE, f"{_EXPORT}/pause", POST=exports.pause_batch_export),
    route(SCOPE, f"{_EXPORT}/unpause", POST=exports.unpause_batch_export),
    route(SCOPE, f"{_EXPORT}/run_test_step", "test_steps", POST=exports.run_test_step),
    route(SCOPE, f"{_EXPORT}/logs", "logs", GET=runs.export_logs),
    route(SCOPE, f"{_EXPORT}/runs", GET=runs.list_runs),
    route(SCOPE, _RUN, GET=runs.retrieve_run),
    route(SCOPE, f"{_RUN}/cancel", POST=runs.cancel_export_run),
    route(SCOPE, f"{_RUN}/retry", POST=runs.retry_run),
    route(SCOPE, f"{_RUN}/logs", "logs", GET=runs.run_logs),
    route(SCOPE, f"{_EXPORT}/backfills", GET=runs.list_backfills, POST=runs.create_export_backfill),
    route(SCOPE, _BACKFILL, GET=runs.retrieve_backfill),
    route(SCOPE, f"{_BACKFILL}/cancel", POST=runs.cancel_backfill),
)
