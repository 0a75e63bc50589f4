"""
The hook options, declared once (:class:`HookOptions`), and the Airflow connection read into the
settings the PostHog hooks use.

An option given to the hook (or in a task's ``hook_params``) wins over the connection's extra of
the same name, which wins over the default. One pure function serves the sync hook and the async
hook (which reads the connection without blocking the event loop).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_phenv.errors import PostHogConnectionConfigError
from airflow_provider_phenv.hooks.retry import DEFAULT_PER_HOUR, DEFAULT_PER_MINUTE
from airflow_provider_phenv.validation import check_project_id

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://us.posthog.com"
API_PREFIXES = ("environments", "projects")
# PostHog's canonical prefix (docs/posthog-api.md §1); environments is deprecated but served.
DEFAULT_API_PREFIX = "projects"
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Largest response body read, decoded (after gzip/deflate): far above any PostHog answer, and low
#: enough that a hostile server cannot grow a worker or the triggerer by more than this.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
#: The whole of one HTTP attempt (connect, redirects, headers, body) takes at most this many
#: timeouts: per-read timeouts alone let a server that sends a byte now and then hold a task forever.
DEADLINE_PER_TIMEOUT = 2.0
#: Most pages read for one listing; a ``next`` link or ``before=`` that never ends stops here.
DEFAULT_MAX_PAGES = 10_000


def _option(default: float | None, kind: type, low: float, *, inclusive: bool = True) -> Any:
    """A :class:`HookOptions` field: a plain number of ``kind`` at least (or above) ``low``."""
    return field(
        default=None, metadata={"default": default, "kind": kind, "low": low, "inclusive": inclusive}
    )


@dataclass(frozen=True, kw_only=True)
class HookOptions:
    """
    The options of a PostHog hook: ``PostHogHook(conn_id, timeout=10)``, or a task's
    ``hook_params={"timeout": 10}``. Each one left out comes from the connection's extra of the
    same name, else its default. Every value is checked when the options are made, so a bad one
    fails when the DAG is parsed.

    :param timeout: seconds to wait for PostHog to answer a request (default 30). Connecting waits
        at most 10 seconds.
    :param max_retries: retries after a failed attempt (default 5).
    :param backoff: first wait in seconds between retries when PostHog sent no ``Retry-After``
        (default 1).
    :param backoff_max: longest wait in seconds between retries (default 30).
    :param max_body_bytes: largest response body read, decoded (default 32 MiB).
    :param request_deadline: seconds one HTTP attempt may take in all, body included (default:
        twice the timeout).
    :param max_pages: most pages read for one listing (default 10,000).
    """

    timeout: float | None = _option(DEFAULT_TIMEOUT, float, 0, inclusive=False)
    max_retries: int | None = _option(5, int, 0)
    backoff: float | None = _option(1.0, float, 0)
    backoff_max: float | None = _option(30.0, float, 0)
    max_body_bytes: int | None = _option(DEFAULT_MAX_BODY_BYTES, int, 1)
    request_deadline: float | None = _option(None, float, 0, inclusive=False)
    max_pages: int | None = _option(DEFAULT_MAX_PAGES, int, 1)

    def __post_init__(self) -> None:
        for option in fields(self):
            object.__setattr__(self, option.name, _checked(option.name, getattr(self, option.name), option))

    @classmethod
    def of(cls, options: Mapping[str, Any], what: str | None = None) -> HookOptions:
        """The options named in ``options``, refusing a name that is none of them.

        :param what: how errors name the mapping (``"hook_params"``).
        """
        declared = {option.name: option for option in fields(cls)}
        for name, value in options.items():
            if name not in declared:
                about = what or "hook option"
                raise ValueError(f"Invalid {about} key {name!r}: expected one of {sorted(declared)}.")
            if value is not None and not _fits(value, declared[name]):
                where = f" in {what}" if what else ""
                raise ValueError(f"Invalid {name} {value!r}{where}: expected {_expected(declared[name])}.")
        return cls(**options)

    def resolved(self, extra: Mapping[str, Any], conn_id: str) -> dict[str, Any]:
        """Every option's value: given, else the connection's extra (URI extras are strings), else
        its default; ``request_deadline`` defaults to twice the timeout."""
        values: dict[str, Any] = {}
        for option in fields(self):
            value = getattr(self, option.name)
            if value is None and extra.get(option.name) not in (None, ""):
                raw = extra[option.name]
                if not _fits(_number(raw), option):
                    raise PostHogConnectionConfigError(
                        f"Connection {conn_id!r}: extra {option.name!r} must be {_expected(option)}, "
                        f"got {raw!r}."
                    )
                value = option.metadata["kind"](_number(raw))
            values[option.name] = option.metadata["default"] if value is None else value
        if values["request_deadline"] is None:
            values["request_deadline"] = values["timeout"] * DEADLINE_PER_TIMEOUT
        return values


def _number(raw: Any) -> Any:
    """A number from a connection extra, which URI-form connections deliver as text."""
    if not isinstance(raw, str):
        return raw
    try:
        return float(raw)
    except ValueError:
        return raw  # refused by the check, quoted as given


def _fits(value: Any, option: Any) -> bool:
    kind, low, inclusive = option.metadata["kind"], option.metadata["low"], option.metadata["inclusive"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if kind is int and not float(value).is_integer():
        return False
    return bool(value >= low if inclusive else value > low)


def _expected(option: Any) -> str:
    low, inclusive = option.metadata["low"], option.metadata["inclusive"]
    what = "integer" if option.metadata["kind"] is int else "number"
    return f"a finite {what} {'>=' if inclusive else '>'} {low}"


def _checked(name: str, value: Any, option: Any) -> Any:
    if value is None:
        return None
    if not _fits(value, option):
        raise ValueError(f"Invalid {name} {value!r}: expected {_expected(option)}.")
    return option.metadata["kind"](value)


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
    backoff: float = 1.0
    backoff_max: float = 30.0
    #: The shared budget of every trigger using this host and key in one triggerer (see ``_budget``).
    requests_per_minute: float = DEFAULT_PER_MINUTE
    requests_per_hour: float = DEFAULT_PER_HOUR
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    request_deadline: float = DEFAULT_TIMEOUT * DEADLINE_PER_TIMEOUT
    max_pages: int = DEFAULT_MAX_PAGES

    @property
    def connect_timeout(self) -> float:
        """Seconds to wait for a connection: a dead host fails fast even with a long read timeout."""
        return min(DEFAULT_CONNECT_TIMEOUT, self.timeout)

    @property
    def host_label(self) -> str:
        """The host for messages: scheme and host, without any path."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def origin(self) -> tuple[str, str]:
        """Scheme and ``host:port`` of the base URL: the only place the key is ever sent."""
        return origin_of(self.base_url)

    @property
    def use_env_proxies(self) -> bool:
        """
        Whether ``HTTP_PROXY``/``ALL_PROXY`` may be used: never for plain http, where the proxy
        would read the key in clear text (and a loopback host needs no proxy anyway).
        """
        return urlsplit(self.base_url).scheme == "https"

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced by ``***``, for any message."""
        if self.api_key and self.api_key in text:
            text = text.replace(self.api_key, "***")
        return text


def origin_of(url: str) -> tuple[str, str]:
    """Scheme and lower-cased ``host:port`` (default port filled in) of a URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or (443 if scheme == "https" else 80)
    return scheme, f"{(parts.hostname or '').lower()}:{port}"


def without_userinfo(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages and links."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def normalize_host(host: str | None, port: int | None = None) -> str:
    """
    Turn the connection's host into a base URL.

    No host means US cloud; no scheme means https; a trailing slash is dropped; the connection's
    ``port`` is used when the host names none. A host with ``user:password@`` is refused without
    repeating the credentials: the key goes in the password field, and userinfo would end up in
    messages and links.
    """
    text = (host or "").strip().rstrip("/")
    if not text:
        return DEFAULT_HOST
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise PostHogConnectionConfigError(
            f"Invalid PostHog host {without_userinfo(text)!r} (given with a user name or password "
            "before '@', not repeated here): remove it; the personal API key goes in the "
            "connection's password field."
        )
    try:
        parts.port  # noqa: B018 - a non-numeric port raises here
    except ValueError:
        raise PostHogConnectionConfigError(
            f"Invalid PostHog host {host!r}: expected a URL like {DEFAULT_HOST}."
        ) from None
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
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None or isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r}: extra {name!r} must be a non-negative number, got {value!r}."
        )
    return number


def _budget(extra: dict[str, Any], name: str, conn_id: str, default: float) -> float:
    value = _extra_number(extra, name, conn_id, float)
    if value == 0:
        raise PostHogConnectionConfigError(f"Connection {conn_id!r}: extra {name!r} must be positive, got 0.")
    return default if value is None else float(value)


def _clean_api_key(conn_id: str, password: str | None) -> str:
    """
    The key without surrounding whitespace (a pasted key often ends in a line break).

    A key with a control character, space or non-ASCII character inside cannot go into an HTTP
    header: refused here, without repeating it, before anything is sent.
    """
    key = (password or "").strip()
    if not key:
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r} has no personal API key: put it in the connection's password field."
        )
    if not all("!" <= char <= "~" for char in key):
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r}: the personal API key contains a line break, space, control or "
            "non-ASCII character inside it (the key itself is not repeated here); paste the key "
            "again as PostHog shows it (phx_ followed by letters and digits)."
        )
    return key


def _mask(key: str) -> None:
    """Register the cleaned key with Airflow's secrets masker (it only knows the stored form)."""
    if len(key) < 5:  # the masker ignores (and warns about) values this short: no real key is
        return
    try:
        from airflow.providers.common.compat.sdk import mask_secret

        mask_secret(key)
    except Exception:  # pragma: no cover - masking is a safety net, never a reason to fail
        log.debug("Could not register the API key with the secrets masker.")


def _extra_flag(extra: dict[str, Any], name: str) -> bool:
    value = extra.get(name, False)
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def settings_from_connection(conn: Any, extra: dict[str, Any], options: HookOptions) -> PostHogSettings:
    """
    Build :class:`PostHogSettings` from an Airflow connection.

    :param conn: the Airflow ``Connection``.
    :param extra: the connection's extra as a dict (read by the caller, sync or async).
    :param options: the hook's options, which win over the connection's extra.
    """
    conn_id = conn.conn_id
    api_key = _clean_api_key(conn_id, conn.password)
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
    api_prefix = str(extra.get("api_prefix") or DEFAULT_API_PREFIX).strip().strip("/")
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
    values = options.resolved(extra, conn_id)
    _mask(api_key)
    return PostHogSettings(
        conn_id=conn_id,
        base_url=base_url,
        api_key=api_key,
        project_id=project_id,
        api_prefix=api_prefix,
        requests_per_minute=_budget(extra, "requests_per_minute", conn_id, DEFAULT_PER_MINUTE),
        requests_per_hour=_budget(extra, "requests_per_hour", conn_id, DEFAULT_PER_HOUR),
        **values,
    )
