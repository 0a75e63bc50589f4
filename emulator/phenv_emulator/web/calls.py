"""What a handler receives (:class:`Call`) and returns (:class:`Response`), and pagination.

Handlers are plain functions ``handler(call) -> Response`` that run under the state lock.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from .errors import not_found, validation_error

if TYPE_CHECKING:
    from ..store.state import EmulatorState


@dataclass
class Response:
    """An HTTP answer. ``body`` None means an empty body (e.g. 204, or the bare 400/404 of ``test``)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Call:
    """One authenticated API request, resolved to a team.

    :param method: HTTP method.
    :param canonical_path: the request path rewritten to ``/api/projects/...`` (what PostHog's
        middleware hands the view, so pagination links use it).
    :param query: parsed query string.
    :param body: parsed JSON body, or None.
    :param base_url: ``http://<Host header>``.
    :param state: the store.
    :param team: the resolved team record.
    :param user: the key owner's user record.
    :param params: named groups of the matched route (``export_id``, ``dashboard_id``...).
    :param required_level: the object access level the route's scope asks for (``viewer`` for a
        read scope, ``editor`` for a write scope; ``AccessControlPermission``, §7.4).
    """

    method: str
    canonical_path: str
    query: dict[str, list[str]]
    body: Any
    base_url: str
    state: EmulatorState
    team: dict[str, Any]
    user: dict[str, Any]
    params: dict[str, str]
    required_level: str = "viewer"

    def arg(self, name: str) -> str | None:
        """The last value of a query parameter, or None (Django's ``QueryDict`` reads the last one)."""
        values = self.query.get(name)
        return values[-1] if values else None

    def data(self) -> dict[str, Any]:
        """The JSON body as a dict (an absent body is ``{}``), else DRF's non-dict error."""
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise validation_error(
                f"Invalid data. Expected a dictionary, but got {type(self.body).__name__}.", code="invalid"
            )
        return self.body

    @property
    def url(self) -> str:
        """The absolute request URL as PostHog builds it (projects path, original query)."""
        query = urlencode([(key, value) for key, values in self.query.items() for value in values])
        return f"{self.base_url}{self.canonical_path}" + (f"?{query}" if query else "")


def _replace_query(url: str, **params: str | None) -> str:
    """DRF's ``replace_query_param``/``remove_query_param``: keys sorted, None removes."""
    scheme, netloc, path, query, fragment = urlsplit(url)
    query_dict = parse_qs(query, keep_blank_values=True)
    for key, value in params.items():
        if value is None:
            query_dict.pop(key, None)
        else:
            query_dict[key] = [value]
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query_dict.items()), doseq=True), fragment))


def _positive_int(text: str | None, *, strict: bool) -> int | None:
    """DRF's ``_positive_int``: None when absent or invalid, so the caller falls back to a default."""
    try:
        number = int(text) if text is not None else None
    except ValueError:
        return None
    if number is None or number < 0 or (strict and number == 0):
        return None
    return number


def limit_offset_page(call: Call, items: list[Any], default_limit: int = 100) -> dict[str, Any]:
    """DRF ``LimitOffsetPagination`` over ``items``: ``{count, next, previous, results}``.

    :param call: the request (its ``limit``/``offset`` and URL).
    :param items: every matching item, already ordered.
    :param default_limit: page size when ``limit`` is absent, not a number or not positive.
    """
    limit = _positive_int(call.arg("limit"), strict=True) or default_limit
    offset = _positive_int(call.arg("offset"), strict=False) or 0
    count = len(items)
    next_url = None
    if offset + limit < count:
        next_url = _replace_query(call.url, limit=str(limit), offset=str(offset + limit))
    previous_url = None
    if offset > 0:
        previous_offset = offset - limit
        previous_url = _replace_query(
            call.url, limit=str(limit), offset=str(previous_offset) if previous_offset > 0 else None
        )
    return {
        "count": count,
        "next": next_url,
        "previous": previous_url,
        "results": items[offset : offset + limit],
    }


def cursor_page(call: Call, items: list[Any], page_size: int) -> dict[str, Any]:
    """DRF ``CursorPagination`` shape ``{next, previous, results}`` (no count) over ordered ``items``.

    The cursor is opaque to clients; here it encodes the position in the ordered list.
    """
    position = 0
    cursor = call.arg("cursor")
    if cursor is not None:
        try:
            position = int(base64.b64decode(cursor.encode()).decode().removeprefix("p="))
        except ValueError:
            raise not_found("Invalid cursor") from None
    page = items[position : position + page_size]

    def link(at: int) -> str:
        return _replace_query(call.url, cursor=base64.b64encode(f"p={at}".encode()).decode())

    return {
        "next": link(position + page_size) if position + page_size < len(items) else None,
        "previous": link(max(position - page_size, 0)) if position > 0 else None,
        "results": page,
    }
