"""Routes: what each resource package declares and :mod:`.api` matches requests against."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .calls import Call, Response

Handler = Callable[[Call], Response]


#: What a route is in DRF's router: a viewset's list or detail route, whose action follows from
#: the method, or (None) an ``@action``, whose scope is the same whatever the method.
LIST, DETAIL = "list", "detail"


@dataclass(frozen=True)
class Route:
    """A path below the team (no slashes at the ends), its handlers by method, and their scope object.

    GET needs ``<scope_object>:read`` and every other method ``<scope_object>:write``, as PostHog
    derives a view's required scope from its action.
    """

    pattern: re.Pattern[str]
    methods: dict[str, Handler]
    scope_object: str
    #: What older builds treat differently: ``logs``, ``test_steps``, ``collaborators``.
    kind: str | None = None
    #: :data:`LIST`, :data:`DETAIL`, or None for an ``@action`` route.
    view: str | None = None
    #: The scope of each method when the view names it (``dangerously_get_required_scopes``),
    #: instead of deriving it from ``scope_object``; a method missing here derives none (403).
    scopes: dict[str, str] | None = None

    def scope(self, method: str) -> str | None:
        """The scope a request with this method needs; None when PostHog derives none.

        A method the route does not handle has no action on a viewset route, so
        ``APIScopePermission`` finds no scope and refuses every personal API key (403) before DRF
        would answer 405; except PATCH on a list route, which it reads as the ``patch`` action
        (``ScopeBasePermission._get_action``). An ``@action`` route declares its scope for every
        method, so a wrong method passes the scope check and then gets the 405.
        """
        if self.scopes is not None:
            return self.scopes.get(method)
        if method not in self.methods:
            if self.view == LIST and method == "PATCH":
                return f"{self.scope_object}:write"
            if self.view is not None:
                return None
            method = next(iter(self.methods))
        return f"{self.scope_object}:{'read' if method == 'GET' else 'write'}"

    def access_level(self, method: str) -> str:
        """The access level ``AccessControlPermission._get_required_access_level`` asks of the
        object for this method: ``editor`` when the required scope is a write scope, else ``viewer``."""
        scope = self.scope(method)
        if scope is None:
            return "viewer" if method in ("GET", "HEAD", "OPTIONS") else "editor"
        return "editor" if scope.endswith(":write") else "viewer"


def route(
    scope_object: str,
    pattern: str,
    kind: str | None = None,
    *,
    view: str | None = None,
    scopes: dict[str, str] | None = None,
    **methods: Handler,
) -> Route:
    """A route of ``pattern`` (a regular expression with named groups for the path's ids).

    :param view: :data:`LIST` or :data:`DETAIL` for a viewset route; None for an ``@action``.
    :param scopes: each method's scope, when the view declares them rather than deriving them.
    """
    return Route(re.compile(f"^{pattern}$"), methods, scope_object, kind, view, scopes)


def detail_route(
    scope_object: str, pattern: str, retrieve: Handler, update: Handler, destroy: Handler
) -> Route:
    """A DRF detail route: GET retrieves, PATCH and PUT update (one handler for both), DELETE destroys."""
    return route(scope_object, pattern, view=DETAIL, GET=retrieve, PATCH=update, PUT=update, DELETE=destroy)
