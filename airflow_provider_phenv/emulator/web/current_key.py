"""``GET /api/personal_api_keys/@current/``: a personal API key reads itself (docs/posthog-api.md §13.17).

Not project-scoped and needing no scope: PostHog answers with the key's ``label``, ``scopes``,
``scoped_teams`` and ``scoped_organizations``, never its secret. Reading another key by id with a
personal API key is refused with 403.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .calls import Response
from .errors import ApiError, method_not_allowed, permission_denied

if TYPE_CHECKING:
    from ..store.state import EmulatorState

#: ``api._authenticate``: the request's key and its record, or a 401.
Authenticate = Callable[[Any, "EmulatorState"], tuple[str, dict[str, Any]]]

PATH = re.compile(r"^/api/personal_api_keys/(?P<key_id>[^/]+)/?$")


def handle_current_key(request: Any, state: EmulatorState, authenticate: Authenticate) -> Response:
    """Answer ``/api/personal_api_keys/<id>/``: ``@current`` reads the calling key.

    :param request: the :class:`~.api.ApiRequest`.
    :param state: the store.
    :param authenticate: how API requests authenticate (passed in, so this module needs no ``api``).
    """
    match = PATH.match(request.path)
    assert match is not None  # the caller matched PATH
    try:
        with state.lock:
            key, record = authenticate(request, state)
            if request.method not in ("GET", "HEAD"):
                raise method_not_allowed(request.method)
            if match["key_id"] != "@current":
                raise permission_denied("This action does not support Personal API Key access")
            return Response(200, _describe(key, record))
    except ApiError as error:
        return Response(error.status, error.body(), headers=dict(error.headers))


def _describe(key: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"emulator-key-{key[-8:]}",
        "label": record.get("label") or "emulator key",
        "mask_value": f"phx_...{key[-4:]}",
        "scopes": list(record["scopes"]),
        "scoped_teams": record.get("scoped_teams"),
        "scoped_organizations": record.get("scoped_organizations"),
    }
