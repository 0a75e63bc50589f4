"""Routing of ``/api/{environments|projects}/{id}/...`` requests, with PostHog's checks in order:

route match (404), authentication (401), project (404/403), method (405), scope (403), throttle
(429), then the handler. ``/api/environments/`` is served in place (never redirected) and its
responses carry the deprecation headers of PostHog's ``EnvironmentsRewriteMiddleware``.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import batch_export_runs as runs
from . import batch_exports as exports
from . import collaborators, dashboards
from .calls import Call, Response
from .errors import (
    ApiError,
    method_not_allowed,
    not_found,
    parse_error,
    permission_denied,
    server_error,
    unauthenticated,
)
from .rate_limit import RateLimiter
from .state import EmulatorState

Handler = Callable[[Call], Response]
_API_PATH = re.compile(r"^/api/(?P<prefix>environments|projects)/(?P<team>[^/]+)/(?P<rest>.*?)/?$")
_EXPORT = r"batch_exports/(?P<export_id>[^/]+)"
_DASHBOARD = r"dashboards/(?P<dashboard_id>[^/]+)"
BE_READ, BE_WRITE = "batch_export:read", "batch_export:write"
DASH_READ, DASH_WRITE = "dashboard:read", "dashboard:write"


@dataclass(frozen=True)
class Route:
    """A path below the team (no slashes at the ends) and its methods: ``method -> (handler, scope)``."""

    pattern: re.Pattern[str]
    methods: dict[str, tuple[Handler, str]]


def _route(pattern: str, **methods: tuple[Handler, str]) -> Route:
    return Route(re.compile(f"^{pattern}$"), methods)


# Fixed segments (``test``, ``run_test_step_new``) come before ``{id}``, as in DRF's router.
ROUTES = (
    _route(
        "batch_exports",
        GET=(exports.list_batch_exports, BE_READ),
        POST=(exports.create_batch_export, BE_WRITE),
    ),
    _route("batch_exports/test", GET=(exports.destination_test_steps, BE_READ)),
    _route("batch_exports/run_test_step_new", POST=(exports.run_test_step_new, BE_WRITE)),
    _route(
        _EXPORT,
        GET=(exports.retrieve_batch_export, BE_READ),
        PATCH=(exports.update_batch_export, BE_WRITE),
        PUT=(exports.update_batch_export, BE_WRITE),
        DELETE=(exports.delete_batch_export, BE_WRITE),
    ),
    _route(f"{_EXPORT}/pause", POST=(exports.pause_batch_export, BE_WRITE)),
    _route(f"{_EXPORT}/unpause", POST=(exports.unpause_batch_export, BE_WRITE)),
    _route(f"{_EXPORT}/run_test_step", POST=(exports.run_test_step, BE_WRITE)),
    _route(f"{_EXPORT}/logs", GET=(runs.export_logs, BE_READ)),
    _route(f"{_EXPORT}/runs", GET=(runs.list_runs, BE_READ)),
    _route(f"{_EXPORT}/runs/(?P<run_id>[^/]+)", GET=(runs.retrieve_run, BE_READ)),
    _route(f"{_EXPORT}/runs/(?P<run_id>[^/]+)/cancel", POST=(runs.cancel_export_run, BE_WRITE)),
    _route(f"{_EXPORT}/runs/(?P<run_id>[^/]+)/retry", POST=(runs.retry_run, BE_WRITE)),
    _route(f"{_EXPORT}/runs/(?P<run_id>[^/]+)/logs", GET=(runs.run_logs, BE_READ)),
    _route(
        f"{_EXPORT}/backfills",
        GET=(runs.list_backfills, BE_READ),
        POST=(runs.create_export_backfill, BE_WRITE),
    ),
    _route(f"{_EXPORT}/backfills/(?P<backfill_id>[^/]+)", GET=(runs.retrieve_backfill, BE_READ)),
    _route(f"{_EXPORT}/backfills/(?P<backfill_id>[^/]+)/cancel", POST=(runs.cancel_backfill, BE_WRITE)),
    _route(
        "dashboards",
        GET=(dashboards.list_dashboards, DASH_READ),
        POST=(dashboards.create_dashboard, DASH_WRITE),
    ),
    _route(
        _DASHBOARD,
        GET=(dashboards.retrieve_dashboard, DASH_READ),
        PATCH=(dashboards.update_dashboard, DASH_WRITE),
        PUT=(dashboards.update_dashboard, DASH_WRITE),
        DELETE=(dashboards.destroy_dashboard, DASH_WRITE),
    ),
    _route(
        f"{_DASHBOARD}/collaborators",
        GET=(collaborators.list_collaborators, DASH_READ),
        POST=(collaborators.add_collaborator, DASH_WRITE),
    ),
    _route(
        f"{_DASHBOARD}/collaborators/(?P<user_uuid>[^/]+)",
        DELETE=(collaborators.remove_collaborator, DASH_WRITE),
    ),
)


@dataclass(frozen=True)
class ApiRequest:
    """An API request as read off the wire.

    :param method: HTTP method (upper-case).
    :param path: path without the query string.
    :param raw_query: the query string as sent.
    :param query: parsed query string.
    :param body: the parsed JSON body, or None.
    :param body_error: the JSON parser's message when the body is not JSON.
    :param headers: request headers (case-insensitive lookups).
    :param base_url: ``http://<Host header>``.
    """

    method: str
    path: str
    raw_query: str
    query: dict[str, list[str]]
    body: Any
    body_error: str | None
    headers: Any
    base_url: str


def handle_api(request: ApiRequest, state: EmulatorState, limiter: RateLimiter) -> Response:
    """Answer one API request; every error becomes PostHog's envelope.

    :param request: the request.
    :param state: the store (locked while the request is handled).
    :param limiter: the per-key throttle.
    """
    path_match = _API_PATH.match(request.path)
    found = _find_route(path_match["rest"]) if path_match else None
    try:
        if path_match is None or found is None:
            raise not_found()
        response = _dispatch(request, path_match["team"], *found, state, limiter)
    except ApiError as error:
        response = Response(error.status, error.body(), headers=dict(error.headers))
    except Exception:
        # An emulator bug: answer like PostHog's unhandled-exception 500 and show the traceback.
        traceback.print_exc()
        response = Response(500, server_error().body())
    if path_match is not None and found is not None and path_match["prefix"] == "environments":
        successor = "/api/projects/" + request.path.removeprefix("/api/environments/")
        if request.raw_query:
            successor += f"?{request.raw_query}"
        response.headers.update({"Deprecation": "true", "Link": f'<{successor}>; rel="successor-version"'})
    return response


def _find_route(rest: str) -> tuple[Route, dict[str, str]] | None:
    for route in ROUTES:
        route_match = route.pattern.match(rest)
        if route_match:
            return route, route_match.groupdict()
    return None


def _dispatch(
    request: ApiRequest,
    raw_team: str,
    route: Route,
    params: dict[str, str],
    state: EmulatorState,
    limiter: RateLimiter,
) -> Response:
    with state.lock:
        key, key_record = _authenticate(request, state)
        user = state.users[key_record["user_uuid"]]
        team = _resolve_team(raw_team, user, key_record, state)
        method = "GET" if request.method == "HEAD" else request.method
        if method not in route.methods:
            raise method_not_allowed(request.method)
        handler, scope = route.methods[method]
        if not _has_scope(key_record["scopes"], scope):
            raise permission_denied(f"API key missing required scope '{scope}'")
        limiter.check(key)
        # DRF parses the body lazily, when the view first reads it: after auth and permissions.
        if request.body_error is not None:
            raise parse_error(request.body_error)
        call = Call(
            method=method,
            canonical_path="/api/projects/" + request.path.split("/", 3)[3],
            query=request.query,
            body=request.body,
            base_url=request.base_url,
            state=state,
            team=team,
            user=user,
            params=params,
        )
        return handler(call)


def _authenticate(request: ApiRequest, state: EmulatorState) -> tuple[str, dict[str, Any]]:
    """``PersonalAPIKeyAuthentication``: only the first key found (header, body, query) is tried."""
    authorization = request.headers.get("Authorization") or ""
    if authorization[:7].lower() == "bearer ":
        key, source = authorization[7:].strip(), "Authorization header"
    elif isinstance(request.body, dict) and request.body.get("personal_api_key"):
        key, source = str(request.body["personal_api_key"]), "body"
    elif request.query.get("personal_api_key"):
        key, source = request.query["personal_api_key"][0], "query string"
    else:
        raise unauthenticated(request.base_url)
    record = state.api_keys.get(key)
    if record is None:
        raise unauthenticated(request.base_url, invalid_key_source=source)
    return key, record


def _resolve_team(raw: str, user: dict[str, Any], key_record: dict[str, Any], state: EmulatorState) -> dict:
    """The team in the path: ``@current`` or a numeric id the user's organization owns."""
    if raw == "@current":
        team = state.teams.get(user["current_team_id"])
    else:
        team = state.teams.get(int(raw)) if raw.isdigit() else None
    if team is None:
        raise not_found("Project not found.")
    if state.membership_level(user["uuid"], team["id"]) is None:
        raise permission_denied("You don't have access to the project.")
    scoped = key_record["scoped_teams"]
    if scoped is not None and team["id"] not in scoped:
        raise permission_denied(f"API key does not have access to the requested project: ID {team['id']}.")
    return team


def _has_scope(scopes: list[str], required: str) -> bool:
    """``*`` grants everything; ``<object>:write`` also grants ``<object>:read``."""
    obj, _, action = required.partition(":")
    return "*" in scopes or required in scopes or (action == "read" and f"{obj}:write" in scopes)
