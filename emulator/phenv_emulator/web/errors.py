"""PostHog's error envelope (drf-exceptions-hog): ``{"type", "code", "detail", "attr"}``.

Handlers raise :class:`ApiError`; the router turns it into the JSON body and status. The
constructors below carry PostHog's exact wording so handlers never spell it themselves.
"""

from __future__ import annotations

import http
import math
from typing import Any


class ApiError(Exception):
    """An error answered with PostHog's envelope.

    :param status: HTTP status code.
    :param type_: envelope ``type`` (``validation_error``, ``authentication_error``, ...).
    :param code: envelope ``code``.
    :param detail: envelope ``detail`` (the first message only, as PostHog sends).
    :param attr: the offending field path (nested keys joined with ``__``) or None.
    :param headers: extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        type_: str,
        code: str,
        detail: str,
        attr: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.code = code
        self.detail = detail
        self.attr = attr
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON envelope."""
        return {"type": self.type, "code": self.code, "detail": self.detail, "attr": self.attr}


def validation_error(detail: str, *, code: str = "invalid_input", attr: str | None = None) -> ApiError:
    """400 ``validation_error``. DRF's ``invalid`` code is reported as ``invalid_input``."""
    return ApiError(400, "validation_error", "invalid_input" if code == "invalid" else code, detail, attr)


def not_found(detail: str = "Not found.") -> ApiError:
    """404 ``invalid_request``/``not_found``."""
    return ApiError(404, "invalid_request", "not_found", detail)


def permission_denied(detail: str = "You do not have permission to perform this action.") -> ApiError:
    """403 ``authentication_error``/``permission_denied``."""
    return ApiError(403, "authentication_error", "permission_denied", detail)


def method_not_allowed(method: str) -> ApiError:
    """405 with DRF's wording."""
    return ApiError(405, "invalid_request", "method_not_allowed", f'Method "{method}" not allowed.')


def parse_error(reason: str) -> ApiError:
    """400 for a body that is not JSON (DRF ``ParseError``)."""
    return ApiError(400, "invalid_request", "parse_error", f"JSON parse error - {reason}")


def server_error(status: int = 500) -> ApiError:
    """A 5xx as drf-exceptions-hog reports an unexpected exception."""
    return ApiError(status, "server_error", "error", "A server error occurred.")


def unauthenticated(base_url: str, *, invalid_key_source: str | None = None) -> ApiError:
    """401 for missing or invalid credentials.

    :param base_url: scheme and host of this server, for the ``WWW-Authenticate`` resource metadata
        that PostHog's wrapper exception handler adds to every 401.
    :param invalid_key_source: where an unknown key was found (``Authorization header``, ``body``,
        ``query string``); None when no credentials were sent at all.
    """
    headers = {
        "WWW-Authenticate": f'Bearer resource_metadata="{base_url}/.well-known/oauth-protected-resource"'
    }
    if invalid_key_source is None:
        return ApiError(
            401,
            "authentication_error",
            "not_authenticated",
            "Authentication credentials were not provided.",
            headers=headers,
        )
    return ApiError(
        401,
        "authentication_error",
        "authentication_failed",
        f"Personal API key found in request {invalid_key_source} is invalid.",
        headers=headers,
    )


def throttled(wait: float | None) -> ApiError:
    """429 with DRF's ``Throttled`` wording; ``Retry-After`` is set when the wait is known."""
    if wait is None:
        return ApiError(429, "throttled_error", "throttled", "Request was throttled.")
    seconds = math.ceil(wait)
    unit = "second" if seconds == 1 else "seconds"
    return ApiError(
        429,
        "throttled_error",
        "throttled",
        f"Request was throttled. Expected available in {seconds} {unit}.",
        headers={"Retry-After": str(seconds)},
    )


def for_status(status: int, retry_after: float | None = None) -> ApiError:
    """The envelope PostHog would send for a bare status code (used by injected faults).

    :param status: any 4xx/5xx status.
    :param retry_after: seconds for ``Retry-After`` (and the 429 detail); None to omit it.
    """
    if status == 429:
        return throttled(retry_after)
    if status == 400:
        error = validation_error("Invalid input.")
    elif status == 401:
        error = ApiError(
            401, "authentication_error", "authentication_failed", "Incorrect authentication credentials."
        )
    elif status == 403:
        error = permission_denied()
    elif status == 404:
        error = not_found()
    elif status >= 500:
        error = server_error(status)
    else:
        error = ApiError(status, "invalid_request", "error", f"{http.HTTPStatus(status).phrase}.")
    if retry_after is not None:
        error.headers["Retry-After"] = str(math.ceil(retry_after))
    return error
