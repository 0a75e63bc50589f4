"""Routing of ``/api/{environments|projects}/{id}/...`` requests, with PostHog's checks in order:

route match (404), authentication (401), project (404/403), method (405), scope (403), throttle
(429), then the handler. ``/api/environments/`` is served in place (never redirected) and its
responses carry the deprecation headers of PostHog's ``EnvironmentsRewriteMiddleware``.

Each resource package declares its routes (``batch_exports.routes``, ``dashboards.routes``); this
module only puts them together.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from typing import Any

from ..batch_exports import routes as batch_export_routes
from ..dashboards import routes as dashboard_routes
from ..store.state import EmulatorState
from .calls import Call, Response
from .current_key import PATH as CURRENT_KEY_PATH
from .current_key import handle_current_key
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
from .routing import Route

_API_PATH = re.compile(r"^/api/(?P<prefix>environments|projects)/(?P<team>[^/]+)/(?P<rest>.*?)/?$")
ROUTES = (*batch_export_routes.ROUTES, *dashboard_routes.ROUTES)


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
    if CURRENT_KEY_PATH.match(request.path):
        return handle_current_key(request, state, _authenticate)
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
        scope = route.scope(method)
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
        return route.methods[method](call)


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
