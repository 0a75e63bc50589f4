"""
Reading an Airflow connection into the settings the PostHog hooks use.

One pure function serves the sync hook and the async hook (which reads the connection without
blocking the event loop), so both read the same fields the same way.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_phenv.errors import PostHogConnectionConfigError
from airflow_provider_phenv.hooks._budget import DEFAULT_PER_HOUR, DEFAULT_PER_MINUTE
from airflow_provider_phenv.validation import check_project_id

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://us.posthog.com"
API_PREFIXES = ("environments", "projects")
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 5
# PostHog's ingestion hosts (us.i.posthog.com) do not serve the private API; a connection pointing
# there fails with confusing 404s, so the hook rewrites it to the API host of the same region.
_INGESTION_SUFFIX = ".i.posthog.com"


@dataclass(frozen=True)
class PostHogSettings:
    """Everything a hook needs to talk to one PostHog instance; the key is kept out of ``repr``."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    project_id: str | None
    api_prefix: str
    timeout: float
    max_retries: int
    #: The shared budget of every trigger using this host and key in one triggerer (see ``_budget``).
    requests_per_minute: float = DEFAULT_PER_MINUTE
    requests_per_hour: float = DEFAULT_PER_HOUR

    @property
    def connect_timeout(self) -> float:
        """Seconds to wait for a connection: a dead host fails fast even with a long read timeout."""
        return min(DEFAULT_CONNECT_TIMEOUT, self.timeout)

    @property
    def host_label(self) -> str:
        """The host for messages: scheme and host, without any path."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"


def normalize_host(host: str | None, port: int | None = None) -> str:
    """
    Turn the connection's host into a base URL.

    No host means US cloud; no scheme means https; a trailing slash is dropped; the connection's
    ``port`` is used when the host names none.
    """
    text = (host or "").strip().rstrip("/")
    if not text:
        return DEFAULT_HOST
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostHogConnectionConfigError(
            f"Invalid PostHog host {host!r}: expected a URL like {DEFAULT_HOST}."
        )
    netloc = parts.netloc
    if parts.hostname.endswith(_INGESTION_SUFFIX):
        api_host = parts.hostname[: -len(_INGESTION_SUFFIX)] + ".posthog.com"
        log.warning("Host %s is PostHog's ingestion host; using the API host %s.", parts.hostname, api_host)
        netloc = netloc.replace(parts.hostname, api_host)
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def is_loopback(hostname: str) -> bool:
    """Whether a hostname is this machine, where plain http exposes the key to no network."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _extra_number(extra: dict[str, Any], name: str, conn_id: str, kind: type) -> Any:
    # URI-form connections deliver every extra as a string, so "7" must work as well as 7.
    value = extra.get(name)
    if value in (None, ""):
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < 0:
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r}: extra {name!r} must be a non-negative number, got {value!r}."
        )
    return number


def _budget(extra: dict[str, Any], name: str, conn_id: str, default: float) -> float:
    value = _extra_number(extra, name, conn_id, float)
    if value == 0:
        raise PostHogConnectionConfigError(f"Connection {conn_id!r}: extra {name!r} must be positive, got 0.")
    return default if value is None else float(value)


def _extra_flag(extra: dict[str, Any], name: str) -> bool:
    value = extra.get(name, False)
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def settings_from_connection(
    conn: Any,
    extra: dict[str, Any],
    *,
    timeout: float | None = None,
    max_retries: int | None = None,
) -> PostHogSettings:
    """
    Build :class:`PostHogSettings` from an Airflow connection.

    :param conn: the Airflow ``Connection``.
    :param extra: the connection's extra as a dict (read by the caller, sync or async).
    :param timeout: request timeout in seconds; overrides the connection's extra ``timeout``.
    :param max_retries: retries after the first attempt; overrides the extra ``max_retries``.
    """
    conn_id = conn.conn_id
    if not conn.password:
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r} has no personal API key: put it in the connection's password field."
        )
    base_url = normalize_host(conn.host, conn.port)
    parts = urlsplit(base_url)
    if (
        parts.scheme == "http"
        and not is_loopback(parts.hostname or "")
        and not _extra_flag(extra, "allow_insecure_http")
    ):
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r}: refusing to send the API key over plain http to {parts.hostname}. "
            "Use https, or set extra allow_insecure_http=true if this network is trusted."
        )
    api_prefix = str(extra.get("api_prefix") or "environments").strip().strip("/")
    if api_prefix not in API_PREFIXES:
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r}: extra api_prefix must be one of {', '.join(API_PREFIXES)}, "
            f"got {api_prefix!r}."
        )
    project_id = extra.get("project_id")
    if project_id in (None, ""):
        project_id = None
    else:
        try:
            project_id = check_project_id(str(project_id).strip())
        except ValueError as error:
            raise PostHogConnectionConfigError(f"Connection {conn_id!r}: {error}") from None
    if timeout is None:
        timeout = _extra_number(extra, "timeout", conn_id, float)
    if max_retries is None:
        max_retries = _extra_number(extra, "max_retries", conn_id, int)
    if timeout is not None and timeout <= 0:
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r}: timeout must be positive, got {timeout!r}."
        )
    return PostHogSettings(
        conn_id=conn_id,
        base_url=base_url,
        api_key=conn.password,
        project_id=project_id,
        api_prefix=api_prefix,
        timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout),
        max_retries=DEFAULT_MAX_RETRIES if max_retries is None else int(max_retries),
        requests_per_minute=_budget(extra, "requests_per_minute", conn_id, DEFAULT_PER_MINUTE),
        requests_per_hour=_budget(extra, "requests_per_hour", conn_id, DEFAULT_PER_HOUR),
    )
