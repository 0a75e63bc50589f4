"""The provider's exceptions. Every HTTP failure is a :class:`PostHogAPIError` (PostHog's error envelope,
the status, the method and the path, never the API key), or a subclass for the cases callers branch on."""

from __future__ import annotations

import json
import re
from typing import Any

# common-compat resolves AirflowFailException to the Task SDK or to Airflow 3.1's core module.
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk.exceptions import AirflowException

_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]+>")
_MAX_DETAIL = 300
# PostHog's own ``detail`` is kept longer than a proxy page's text, but bounded: errors end up in
# task logs, trigger events and the metadata database.
MAX_DETAIL_CHARS = 1000
_MAX_TAG_CHARS = 100


class PostHogError(AirflowException):
    """Base class of every error this provider raises on purpose."""


class PostHogConnectionConfigError(PostHogError):
    """The Airflow connection is missing something or holds a value the hook cannot use."""


class PostHogAPIError(PostHogError):
    """A request to PostHog failed.

    :param status_code: HTTP status, or ``None`` when no response arrived.
    :param method: HTTP method of the request.
    :param path: URL path of the request (no host, no query, never the key).
    :param resource: what the request was about, e.g. ``batch export 018f...``.
    :param type: PostHog's error ``type`` (``validation_error``, ``authentication_error``...).
    :param code: PostHog's error ``code`` (``not_found``, ``permission_denied``...).
    :param detail: PostHog's human-readable ``detail``.
    :param attr: the field PostHog blames, if any.
    :param hint: a sentence on what to check, added to the message.
    """

    def __init__(
        self,
        *,
        status_code: int | None,
        method: str,
        path: str,
        resource: str | None = None,
        type: str | None = None,
        code: str | None = None,
        detail: str | None = None,
        attr: str | None = None,
        hint: str | None = None,
    ) -> None:
        # AirflowException declares status_code for its REST API errors; here it is PostHog's.
        self.status_code = status_code  # type: ignore[assignment]
        self.method, self.path, self.resource, self.hint = method, clip(path, 300), resource, hint
        self.type, self.code, self.attr = (clip(tag, _MAX_TAG_CHARS) for tag in (type, code, attr))
        self.detail = clip(detail, MAX_DETAIL_CHARS)
        status = f"HTTP {status_code}" if status_code is not None else "no response"
        tags = ", ".join(tag for tag in (self.code, f"attr={self.attr}" if self.attr else None) if tag)
        text = f"PostHog {status} on {method} {self.path}" + (f" for {resource}" if resource else "")
        text += f": {self.detail}" if self.detail else ""
        text += f" [{tags}]" if tags else ""
        super().__init__(text + (f" {hint}" if hint else ""))

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__: pickle rebuilds the error from its message and attributes instead.
        return (type(self).__new__, (type(self), *self.args), self.__dict__.copy())


# 400, 401, 403 and 404 cannot succeed on a retry: as AirflowFailException they fail the task
# without Airflow's retries. Ambiguous outcomes, transport errors, 429 and 5xx are retried.
class PostHogBadRequestError(PostHogAPIError, AirflowFailException):
    """400: PostHog rejected the request body or parameters (``detail`` says why). Not retried."""


class PostHogAuthError(PostHogAPIError, AirflowFailException):
    """401, or 403: invalid key, wrong region host, missing scope, no project access. Not retried."""


class PostHogNotFoundError(PostHogAPIError, AirflowFailException):
    """404: the project or the object does not exist (or belongs to another project). Not retried."""


class PostHogRateLimitError(PostHogAPIError):
    """429: throttled; ``retry_after`` holds PostHog's ``Retry-After`` in seconds, when sent."""

    def __init__(self, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(**kwargs)


class PostHogServerError(PostHogAPIError):
    """5xx from PostHog or from a proxy in front of it."""


class PostHogTransportError(PostHogAPIError):
    """No usable response: connection refused, dropped, timed out.

    :param request_sent: whether the request may have reached PostHog (False: no connection opened).
    """

    def __init__(self, *, request_sent: bool, **kwargs: Any) -> None:
        self.request_sent = request_sent
        super().__init__(status_code=None, **kwargs)


class PostHogWriteOutcomeUnknownError(PostHogAPIError):
    """A create may or may not have been carried out (the response was lost): raised instead of re-sending it;
    callers look up whether the object exists before trying again."""


class PostHogBackfillNotVisibleError(PostHogError):
    """PostHog accepted a backfill, but its workflow had not written its row within the wait."""


class PostHogDeadlineError(PostHogTransportError):
    """No complete answer within the request deadline (connect, redirects, headers and body together)."""


class PostHogUnexpectedResponseError(PostHogAPIError):
    """An answer this provider cannot trust: a 2xx body that is not JSON or not of the expected shape, a
    redirect it does not follow, or a response over a limit. Never retried."""


class PostHogRedirectError(PostHogUnexpectedResponseError):
    """A 3xx not followed (another host, a method change, 304, too many hops); ``location``: its target."""

    def __init__(self, *, location: str | None = None, **kwargs: Any) -> None:
        self.location = location
        super().__init__(**kwargs)


class PostHogResponseTooLargeError(PostHogUnexpectedResponseError):
    """A response body (decoded) over the hook's ``max_body_bytes``."""


class PostHogPaginationError(PostHogUnexpectedResponseError):
    """A listing that does not end: ``next`` back to a page already read, ``before=`` ignored, or
    more pages than the hook's ``max_pages``."""


def error_class_for_status(status_code: int) -> type[PostHogAPIError]:
    """Pick the :class:`PostHogAPIError` subclass callers branch on for an HTTP status."""
    by_status: dict[int, type[PostHogAPIError]] = {
        400: PostHogBadRequestError,
        401: PostHogAuthError,
        403: PostHogAuthError,
        404: PostHogNotFoundError,
        429: PostHogRateLimitError,
    }
    return by_status.get(status_code) or (PostHogServerError if status_code >= 500 else PostHogAPIError)


def parse_error_body(body: bytes | str, content_type: str | None) -> dict[str, Any]:
    """PostHog's error envelope from a body; any other body (a proxy's page) gives a short ``detail``."""
    text = (body.decode("utf-8", "replace") if isinstance(body, bytes) else body).strip()
    if not text:
        return {}
    if "json" in (content_type or "") or text.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict):
            fields = {key: data.get(key) for key in ("type", "code", "detail", "attr")}
            if fields["detail"] is None and data:
                fields["detail"] = _shorten(str(data))
            # As text; PostHogAPIError bounds each field.
            return {key: None if value is None else str(value) for key, value in fields.items()}
    text = text[:100_000]  # enough for a title or a readable start; regexes stay cheap
    title = _HTML_TITLE.search(text)
    readable = title.group(1) if title else _HTML_TAG.sub(" ", text)
    kind = "HTML" if "<" in text else "text"
    return {"detail": f"non-JSON {kind} response: {_shorten(readable)}"}


def _shorten(text: str) -> str:
    text = " ".join(text[: _MAX_DETAIL * 20].split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def clip(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters (marked with ``...`` and the length cut), or None."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[: limit - 40]}... ({len(text) - limit + 40:,} more characters)"
