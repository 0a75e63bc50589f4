"""Routing of ``/api/{environments|projects}/{id}/...`` requests, with PostHog's checks in order:

route match (404), authentication (401), a scope the action derives (403), project (404) and the
key's scoped teams (403), the scope itself (403), project membership (403), throttle (429), method
(405), body (400), then the handler. ``/api/environments/`` is served in place (never redirected) and its
responses carry the deprecation headers of PostHog's ``EnvironmentsRewriteMiddleware``; the
older-build switches of :mod:`..store.switches` change that, a few scopes and ``Retry-After``.
``/api/personal_api_keys/@current/`` lets a key read itself (§2.1).

``/api/organizations/{id|@current}/...`` (the organization and its members, §7.5) goes through
the same checks with the organization in place of the project: authentication (401), derived
scope (403), a key scoped to projects (403), the scope (403), the organization (404
``Organization not found.``) and membership of it (403), throttle, method, handler.

Each resource package declares its routes (``batch_exports.routes``, ``dashboards.routes``); this
module only puts them together.
"""

from __future__ import annotations

import re
import traceback
import uuid
from dataclasses import dataclass
from typing import Any

from ..batch_exports import routes as batch_export_routes
from ..dashboards import routes as dashboard_routes
from ..organizations import routes as organization_routes
from ..store.state import EmulatorState
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
from .fields import iso
from .rate_limit import RateLimiter
from .routing import Route

_API_PATH = re.compile(r"^/api/(?P<prefix>environments|projects)/(?P<team>[^/]+)(?:/(?P<rest>.*?))?/?$")
_ORGANIZATION_PATH = re.compile(r"^/api/organizations/(?P<organization>[^/]+)(?:/(?P<rest>.*?))?/?$")
_KEY_PATH = re.compile(r"^/api/personal_api_keys(?:/(?P<key_id>[^/]+))?/?$")
#: ``API_ENVIRONMENTS_SUNSET_DATE``'s default (``posthog/settings/web.py``) as an HTTP date.
SUNSET = "Fri, 31 Jul 2026 00:00:00 GMT"
#: ``PersonalApiKeySelfAccessPermission``'s message, and ``APIScopePermission``'s on older builds.
NO_KEY_ACCESS = "This action does not support Personal API Key access"
#: ``APIScopePermission`` today (``posthog/permissions.py``), when an action derives no scope.
NO_DERIVED_SCOPE = "This action does not support personal API key access"
ROUTES = (*batch_export_routes.ROUTES, *dashboard_routes.ROUTES, *organization_routes.ROUTES)
ORGANIZATION_ROUTES = organization_routes.ORGANIZATION_ROUTES
#: ``APIScopePermission.check_team_and_org_permissions`` when a key with ``scoped_teams`` calls a
#: view that has no team (``posthog/permissions.py``).
SCOPED_KEY_NOT_ON_PROJECT = "API key with scoped projects are only supported on project-based views."
#: DRF's default ``PermissionDenied`` message (``OrganizationMemberPermissions`` sets none).
NOT_PERMITTED = "You do not have permission to perform this action."


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
    if path_match and path_match["prefix"] == "environments" and "environments-redirect" in state.switches:
        # One build's middleware behind the flag ``api-environments-redirect`` (§1).
        location = "/api/projects/" + request.path.removeprefix("/api/environments/")
        return Response(
            307, headers={"Location": location + (f"?{request.raw_query}" if request.raw_query else "")}
        )
    found = _find_route(path_match["rest"] or "") if path_match else None
    organization_match = _ORGANIZATION_PATH.match(request.path)
    organization_found = (
        _find_route(organization_match["rest"] or "", ORGANIZATION_ROUTES) if organization_match else None
    )
    if (
        found
        and path_match
        and path_match["prefix"] == "environments"
        and found[0].kind == "collaborators"
        and "projects-only-collaborators" in state.switches
    ):
        found = None  # some builds registered collaborators only under /api/projects/ (§7.3)
    key_match = _KEY_PATH.match(request.path)
    try:
        if key_match is not None:
            response = _personal_api_key(request, key_match["key_id"], state)
        elif organization_match is not None and organization_found is not None:
            response = _dispatch_organization(
                request, organization_match["organization"], *organization_found, state, limiter
            )
        elif path_match is None or found is None:
            raise not_found()
        else:
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
        response.headers.update(
            {"Deprecation": "true", "Link": f'<{successor}>; rel="successor-version"', "Sunset": SUNSET}
        )
    return response


def without_retry_after(response: Response, state: EmulatorState) -> Response:
    """Older drf-exceptions-hog sends a throttled 429 without ``Retry-After`` (§3)."""
    throttled = isinstance(response.body, dict) and response.body.get("type") == "throttled_error"
    if response.status == 429 and throttled and "no-retry-after" in state.switches:
        response.headers.pop("Retry-After", None)
    return response


def _personal_api_key(request: ApiRequest, key_id: str | None, state: EmulatorState) -> Response:
    """``PersonalAPIKeyViewSet`` with a personal API key (§2.1): ``PersonalApiKeySelfAccessPermission``
    lets it only retrieve itself, as ``@current`` or by its own id (200, never the secret). Anything
    else is 403; a key of another user is not in the queryset (404).
    (``posthog/api/test/test_personal_api_keys.py``, ``TestPersonalAPIKeyAPIAccess``.)
    """
    with state.lock:
        _key, record = _authenticate(request, state)
        if key_id is None or request.method not in ("GET", "HEAD"):
            raise permission_denied(NO_KEY_ACCESS)
        if key_id != "@current" and key_id != record["id"]:
            other = next((r for r in state.api_keys.values() if r["id"] == key_id), None)
            if other is None or other["user_uuid"] != record["user_uuid"]:
                raise not_found()
            raise permission_denied(NO_KEY_ACCESS)  # has_object_permission: not the key in use
        return Response(
            200,
            {
                "id": record["id"],
                "label": record["label"],
                "value": None,
                "mask_value": None,
                "created_at": iso(record["created_at"]),
                "last_used_at": None,
                "last_rolled_at": None,
                "user_id": state.users[record["user_uuid"]]["id"],
                "scopes": list(record["scopes"]),
                "scoped_teams": list(record["scoped_teams"] or []),
                "scoped_organizations": list(record.get("scoped_organizations") or []),
            },
        )


def _find_route(rest: str, routes: tuple[Route, ...] = ROUTES) -> tuple[Route, dict[str, str]] | None:
    for route in routes:
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
    """DRF's ``initial()`` then the handler, with ``TeamAndOrgViewSetMixin``'s permission classes in
    their order: ``APIScopePermission`` (derived scope, then the team and the key's scoped teams,
    then the scope itself), then ``TeamMemberAccessPermission``; throttles after permissions; a
    method without a handler (405) and the body (parse error) only once the view runs."""
    with state.lock:
        key, key_record, user, method = _authenticated(request, state)
        scope = route.scope(method)
        if route.kind == "test_steps" and "internal-test-scope" in state.switches:
            scope = "INTERNAL"  # no key holds it: ``*`` does not grant INTERNAL (§2.2)
        if route.kind == "logs" and "logs-no-key-scope" in state.switches:
            raise permission_denied(NO_KEY_ACCESS)
        if scope is None:
            raise permission_denied(NO_DERIVED_SCOPE)
        team = _resolve_team(raw_team, user, key_record, state)
        if scope == "INTERNAL" or not _has_scope(key_record["scopes"], scope):
            raise permission_denied(f"API key missing required scope '{scope}'")
        if state.membership_level(user["uuid"], team["id"]) is None:
            raise permission_denied("You don't have access to the project.")
        limiter.check(key, team["id"])
        return _view(
            request,
            route,
            method,
            state,
            user,
            canonical_path="/api/projects/" + request.path.split("/", 3)[3],
            team=team,
            params=params,
            required_level=route.access_level(method),
        )


def _dispatch_organization(
    request: ApiRequest,
    raw_organization: str,
    route: Route,
    params: dict[str, str],
    state: EmulatorState,
    limiter: RateLimiter,
) -> Response:
    """The organization routes, with the permission order of :func:`_dispatch`: a key scoped to
    projects is refused on a view without a team; ``@current`` is the organization of the key
    owner's current project; an unknown or malformed id is 404 ``Organization not found.``
    (``TeamAndOrgViewSetMixin.organization``); an organization the owner is not a member of is
    403 (``OrganizationMemberPermissions``, DRF's default message)."""
    with state.lock:
        key, key_record, user, method = _authenticated(request, state)
        scope = route.scope(method)
        if scope is None:
            raise permission_denied(NO_DERIVED_SCOPE)
        if key_record["scoped_teams"]:
            raise permission_denied(SCOPED_KEY_NOT_ON_PROJECT)
        if not _has_scope(key_record["scopes"], scope):
            raise permission_denied(f"API key missing required scope '{scope}'")
        organization_id = _resolve_organization(raw_organization, user, state)
        if state.membership(user["uuid"], organization_id) is None:
            raise permission_denied(NOT_PERMITTED)
        limiter.check(key)
        params = {**params, "organization_id": organization_id}
        # team={}: organization routes have no project.
        return _view(request, route, method, state, user, canonical_path=request.path, team={}, params=params)


def _authenticated(
    request: ApiRequest, state: EmulatorState
) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    """How every API view starts, inside the state's lock: the clock moves on, the key is
    authenticated; the key, its record, its owner and the method (HEAD served as GET)."""
    state.advance()
    key, key_record = _authenticate(request, state)
    method = "GET" if request.method == "HEAD" else request.method
    return key, key_record, state.users[key_record["user_uuid"]], method


def _view(
    request: ApiRequest,
    route: Route,
    method: str,
    state: EmulatorState,
    user: dict[str, Any],
    **resolved: Any,
) -> Response:
    """The view, once permissions and throttles passed: a method without a handler is 405, then
    the body is parsed (DRF parses it lazily, when the view first reads it: after auth and
    permissions), then the handler runs. ``resolved``: the rest of the :class:`Call`."""
    handler = route.methods.get(method)
    if handler is None:
        raise method_not_allowed(request.method)
    if request.body_error is not None:
        raise parse_error(request.body_error)
    call = Call(
        method=method,
        query=request.query,
        body=request.body,
        base_url=request.base_url,
        state=state,
        user=user,
        **resolved,
    )
    return handler(call)


def _resolve_organization(raw: str, user: dict[str, Any], state: EmulatorState) -> str:
    """``@current`` (the organization of the user's current project) or an organization's id."""
    if raw == "@current":
        team = state.teams.get(user["current_team_id"])
        if team is None:
            raise not_found("You need to belong to an organization.")
        return str(team["organization_id"])
    try:
        organization_id = str(uuid.UUID(raw))
    except ValueError:
        raise not_found("Organization not found.") from None
    if organization_id not in state.organizations:
        raise not_found("Organization not found.")
    return organization_id


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
    """The team in the path (``@current`` or a numeric id), and the key's ``scoped_teams``."""
    if raw == "@current":
        team = state.teams.get(user["current_team_id"])
    else:
        team = state.teams.get(int(raw)) if raw.isdigit() else None
    if team is None:
        raise not_found("Project not found.")
    scoped = key_record["scoped_teams"]
    if scoped is not None and team["id"] not in scoped:
        raise permission_denied(f"API key does not have access to the requested project: ID {team['id']}.")
    return team


def _has_scope(scopes: list[str], required: str) -> bool:
    """``*`` grants everything; ``<object>:write`` also grants ``<object>:read``."""
    obj, _, action = required.partition(":")
    return "*" in scopes or required in scopes or (action == "read" and f"{obj}:write" in scopes)
