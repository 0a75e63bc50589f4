"""Routes: what each resource package declares and :mod:`.api` matches requests against."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .calls import Call, Response

Handler = Callable[[Call], Response]


@dataclass(frozen=True)
class Route:
    """A path below the team (no slashes at the ends), its handlers by method, and their scope object.

    GET needs ``<scope_object>:read`` and every other method ``<scope_object>:write``, as PostHog
    derives a view's required scope from the request method.
    """

    pattern: re.Pattern[str]
    methods: dict[str, Handler]
    scope_object: str
    #: What older builds treat differently: ``logs``, ``test_steps``, ``collaborators``.
    kind: str | None = None

    def scope(self, method: str) -> str:
        """The scope a request with this method needs."""
        return f"{self.scope_object}:{'read' if method == 'GET' else 'write'}"


def route(scope_object: str, pattern: str, kind: str | None = None, **methods: Handler) -> Route:
    """A route of ``pattern`` (a regular expression with named groups for the path's ids)."""
    return Route(re.compile(f"^{pattern}$"), methods, scope_object, kind)


def detail_route(
    scope_object: str, pattern: str, retrieve: Handler, update: Handler, destroy: Handler
) -> Route:
    """A DRF detail route: GET retrieves, PATCH and PUT update (one handler for both), DELETE destroys."""
    return route(scope_object, pattern, GET=retrieve, PATCH=update, PUT=update, DELETE=destroy)
