"""What a connection sets: the hook options (checked once), :class:`PostHogSettings`, and the retry and
request-budget policy they drive. Why each rule exists: docs/airflow-internals.md, "Connection settings" and
"Retries and the request budget"."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import ipaddress
import logging
import math
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
)

from airflow_provider_phenv.errors import (
    PostHogConnectionConfigError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
)
from airflow_provider_phenv.validation import check_project_id

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_HOST = "https://us.posthog.com"
API_PREFIXES = ("environments", "projects")
# PostHog's canonical prefix (docs/posthog-api.md §1); environments is deprecated but served.
DEFAULT_API_PREFIX = "projects"
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Largest response body read, decoded: far above any PostHog answer, low enough to bound a worker.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
#: One HTTP attempt (connect, redirects, headers, body) takes at most this many timeouts.
DEADLINE_PER_TIMEOUT = 2.0
#: Most pages read for one listing; a ``next`` link or ``before=`` that never ends stops here.
DEFAULT_MAX_PAGES = 10_000
#: A little under PostHog's personal-API-key limits (480/minute, 4,800/hour), leaving room for the
#: workers' own requests with the same key.
DEFAULT_PER_MINUTE = 400
DEFAULT_PER_HOUR = 4000


# -- the hook options ---------------------------------------------------------------------------


class _Rule(NamedTuple):
    """A number setting: a finite ``kind`` at least (or above) ``low``; ``default`` when not set."""

    default: float | None
    kind: type
    low: float
    inclusive: bool = True
    expected: str | None = None  # what messages say it must be, if not "a finite number >= low"


def _option(*rule: Any, **keywords: Any) -> Any:
    """A :class:`HookOptions` field, checked by ``_Rule(*rule, **keywords)`` and defaulting to its default."""
    checked = _Rule(*rule, **keywords)
    return field(default=checked.default, metadata={"rule": checked})


@dataclass(frozen=True, kw_only=True)
class HookOptions:
    """The options of a PostHog hook (``PostHogHook(conn_id, timeout=10)`` or a task's ``hook_params``), as
    :class:`PostHogSettings` holds them. Each one left out comes from the connection's extra of the same name,
    else its default. :meth:`of` checks every value given, so a bad one fails when the DAG is parsed.

    :param timeout: seconds to wait for an answer (default 30); connecting waits at most 10.
    :param max_retries: retries after a failed attempt (default 5).
    :param backoff: first wait in seconds between retries without ``Retry-After`` (default 1).
    :param backoff_max: longest wait in seconds between retries (default 30).
    :param max_body_bytes: largest response body read, decoded (default 32 MiB).
    :param request_deadline: seconds one HTTP attempt may take in all (default: twice the timeout).
    :param max_pages: most pages read for one listing (default 10,000).
    """

    timeout: float = _option(DEFAULT_TIMEOUT, float, 0, inclusive=False)
    max_retries: int = _option(5, int, 0)
    backoff: float = _option(1.0, float, 0)
    backoff_max: float = _option(30.0, float, 0)
    max_body_bytes: int = _option(DEFAULT_MAX_BODY_BYTES, int, 1)
    request_deadline: float = _option(DEFAULT_TIMEOUT * DEADLINE_PER_TIMEOUT, float, 0, inclusive=False)
    max_pages: int = _option(DEFAULT_MAX_PAGES, int, 1)

    @staticmethod
    def of(options: Mapping[str, Any], what: str | None = None) -> dict[str, Any]:
        """The options named in ``options`` that are not None, checked, refusing a name that is none of them.

        :param options: option names and values.
        :param what: how errors name the mapping (``"hook_params"``).
        """
        for name, value in options.items():
            if name not in _RULES:
                raise ValueError(
                    f"Invalid {what or 'hook option'} key {name!r}: expected one of {sorted(_RULES)}."
                )
            if value is not None and not _fits(value, _RULES[name]):
                where = f" in {what}" if what else ""
                raise ValueError(f"Invalid {name} {value!r}{where}: expected {_expected(_RULES[name])}.")
        return {name: _RULES[name].kind(value) for name, value in options.items() if value is not None}


_RULES: dict[str, _Rule] = {option.name: option.metadata["rule"] for option in fields(HookOptions)}


def _from_extra(extra: Mapping[str, Any], name: str, rule: _Rule, conn_id: str) -> Any:
    """The connection's extra ``name`` as ``rule.kind``, else the rule's default."""
    raw = extra.get(name)
    if raw in (None, ""):
        return rule.default
    # URI-form connections deliver every extra as text; what is not a number is refused as given.
    number = raw
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            number = float(raw)
    if not _fits(number, rule):
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r}: extra {name!r} must be {_expected(rule)}, got {raw!r}."
        )
    return rule.kind(number)


def _fits(value: Any, rule: _Rule) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if rule.kind is int and not float(value).is_integer():
        return False
    return bool(value >= rule.low if rule.inclusive else value > rule.low)


def _expected(rule: _Rule) -> str:
    what = "integer" if rule.kind is int else "number"
    return rule.expected or f"a finite {what} {'>=' if rule.inclusive else '>'} {rule.low}"


#: The request budget, extras only: each process polling with the key (triggerers...) takes its share.
_BUDGET = {
    "requests_per_minute": _Rule(DEFAULT_PER_MINUTE, float, 0, inclusive=False),
    "requests_per_hour": _Rule(DEFAULT_PER_HOUR, float, 0, inclusive=False),
    "key_shared_by": _Rule(1, int, 1, expected="a whole number of processes (1 or more)"),
}


# -- the connection -----------------------------------------------------------------------------

# PostHog's ingestion hosts (us.i.posthog.com) do not serve the private API; a connection pointing
# there fails with confusing 404s, so the hook rewrites it to the API host of the same region.
_INGESTION_SUFFIX = ".i.posthog.com"


@dataclass(frozen=True)
class PostHogSettings(HookOptions):
    """Everything a hook needs to talk to one PostHog instance: its options, and the connection's other
    fields; the key is kept out of ``repr``."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    project_id: str | None
    api_prefix: str
    #: The budget shared by every async hook with this host and key in one event loop.
    requests_per_minute: float = DEFAULT_PER_MINUTE
    requests_per_hour: float = DEFAULT_PER_HOUR

    @property
    def connect_timeout(self) -> float:
        """A dead host fails fast even with a long read timeout."""
        return min(DEFAULT_CONNECT_TIMEOUT, self.timeout)

    @property
    def host_label(self) -> str:
        """Scheme and host, without any path, for messages."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def use_env_proxies(self) -> bool:
        """Never for plain http, where a proxy would read the key in clear text."""
        return urlsplit(self.base_url).scheme == "https"

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced by ``***``."""
        return text.replace(self.api_key, "***") if self.api_key else text


def origin_of(url: str) -> tuple[str, str]:
    """Scheme and lower-cased ``host:port`` (default port filled in) of a URL."""
    parts, port = urlsplit(url), None
    with contextlib.suppress(ValueError):  # not a number
        port = parts.port
    scheme = parts.scheme.lower()
    return scheme, f"{(parts.hostname or '').lower()}:{port or (443 if scheme == 'https' else 80)}"


def without_userinfo(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages and links."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def normalize_host(host: str | None, port: int | None = None) -> str:
    """The connection's host as a base URL: none means US cloud, no scheme means https, no trailing slash;
    ``port`` is used when the host names none. Userinfo is refused without repeating it.

    :param host: the connection's host.
    :param port: the connection's port.
    """
    text = (host or "").strip().rstrip("/")
    if not text:
        return DEFAULT_HOST
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise PostHogConnectionConfigError(
            f"Invalid PostHog host {without_userinfo(text)!r}: remove the user name or password before '@'"
            " (not repeated here); the personal API key goes in the connection's password field."
        )
    named_port: int | None = -1
    with contextlib.suppress(ValueError):  # not a number
        named_port = parts.port
    if named_port == -1 or parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostHogConnectionConfigError(
            f"Invalid PostHog host {host!r}: expected a URL like {DEFAULT_HOST}."
        )
    netloc = parts.netloc
    if parts.hostname.endswith(_INGESTION_SUFFIX):
        api_host = parts.hostname[: -len(_INGESTION_SUFFIX)] + ".posthog.com"
        log.warning("Host %s is PostHog's ingestion host; using the API host %s.", parts.hostname, api_host)
        netloc = netloc.replace(parts.hostname, api_host)
    if port and named_port is None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def settings_from_connection(conn: Any, extra: dict[str, Any], options: Mapping[str, Any]) -> PostHogSettings:
    """Build :class:`PostHogSettings` from an Airflow connection.

    :param conn: the Airflow ``Connection``.
    :param extra: the connection's extra as a dict (read by the caller, sync or async).
    :param options: the hook's options (from :meth:`HookOptions.of`), which win over the connection's extra.
    """
    conn_id = conn.conn_id
    # A pasted key often ends in a line break; a space or control character inside cannot go in a header.
    api_key = (conn.password or "").strip()
    if not api_key:
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r} has no personal API key: put it in the connection's password field."
        )
    if not all("!" <= char <= "~" for char in api_key):
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r}: the personal API key has a line break, space, control or non-ASCII "
            "character inside (the key itself is not repeated here); paste it again as PostHog shows it "
            "(phx_ followed by letters and digits)."
        )
    base_url = normalize_host(conn.host, conn.port)
    parts, host = urlsplit(base_url), urlsplit(base_url).hostname or ""
    # Plain http exposes the key to no network on this machine, or on one the connection says is trusted.
    flag = extra.get("allow_insecure_http", False)
    trusted = flag is True or (isinstance(flag, str) and flag.strip().lower() in ("true", "1", "yes"))
    with contextlib.suppress(ValueError):  # not an IP address
        trusted = trusted or host == "localhost" or ipaddress.ip_address(host).is_loopback
    if parts.scheme == "http" and not trusted:
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r}: refusing to send the API key over plain http to {host}. "
            "Use https, or set extra allow_insecure_http=true if this network is trusted."
        )
    api_prefix = str(extra.get("api_prefix") or DEFAULT_API_PREFIX).strip().strip("/")
    if api_prefix not in API_PREFIXES:
        raise PostHogConnectionConfigError(
            f"Connection {conn_id!r}: extra api_prefix must be one of {', '.join(API_PREFIXES)}, "
            f"got {api_prefix!r}."
        )
    project_id = extra.get("project_id")
    try:
        project_id = None if project_id in (None, "") else check_project_id(str(project_id).strip())
    except ValueError as error:
        raise PostHogConnectionConfigError(f"Connection {conn_id!r}: {error}") from None
    # The options given, else set in the extra; the others keep their defaults.
    values = {
        name: _from_extra(extra, name, rule, conn_id)
        for name, rule in _RULES.items()
        if extra.get(name) not in (None, "")
    }
    values.update(options)
    values.setdefault("request_deadline", values.get("timeout", DEFAULT_TIMEOUT) * DEADLINE_PER_TIMEOUT)
    per_minute, per_hour, shared_by = (_from_extra(extra, n, rule, conn_id) for n, rule in _BUDGET.items())
    # Airflow's secrets masker only knows the stored form, and ignores (and warns about) short values.
    if len(api_key) >= 5:
        try:
            from airflow.providers.common.compat.sdk import mask_secret

            mask_secret(api_key)
        except Exception:  # pragma: no cover - masking is a safety net, never a reason to fail
            log.debug("Could not register the API key with the secrets masker.")
    return PostHogSettings(
        conn_id=conn_id,
        base_url=base_url,
        api_key=api_key,
        project_id=project_id,
        api_prefix=api_prefix,
        requests_per_minute=per_minute / shared_by,
        requests_per_hour=per_hour / shared_by,
        **values,
    )


# -- retries --------------------------------------------------------------------------------------

# After any 5xx (a proxy's 520/524 too) a request that is not safe to repeat may have been carried out.
AMBIGUOUS_STATUSES = frozenset(range(500, 600))
MAX_RETRY_AFTER = 120.0
#: PostHog's 429 code when an export already runs as many backfills as it may (docs §6.9).
TOO_MANY_BACKFILLS = "too_many_concurrent_backfills"


def is_retryable(error: BaseException) -> bool:
    """Whether a failed attempt is worth another one (the caller already ruled out unsafe repeats)."""
    if isinstance(error, PostHogRateLimitError):
        # Not throttling: a wait for a free backfill slot, which the backfill create does itself.
        return error.code != TOO_MANY_BACKFILLS
    if isinstance(error, PostHogServerError):
        return error.status_code in (500, 502, 503, 504)
    return isinstance(error, PostHogTransportError)


class WaitForPostHog:
    """Tenacity wait: PostHog's ``Retry-After`` when it sent one, else exponential backoff with jitter.

    :param backoff: first backoff in seconds; doubles per attempt.
    :param backoff_max: longest backoff in seconds.
    """

    def __init__(self, backoff: float, backoff_max: float) -> None:
        # Composed from the two oldest tenacity waits, so every tenacity Airflow ships behaves alike.
        self._exponential = wait_exponential(multiplier=backoff, max=backoff_max) + wait_random(0, backoff)

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, PostHogRateLimitError) and error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_AFTER)  # a bad header cannot stall a task
        return self._exponential(retry_state)


def _retrying(retry: Any, stop: Any, wait: Any, before_sleep: Any = None) -> dict[str, Any]:
    # Keyword arguments for tenacity's Retrying and AsyncRetrying alike; the last error is raised as is.
    return {"retry": retry, "stop": stop, "wait": wait, "before_sleep": before_sleep, "reraise": True}


def retry_kwargs(settings: PostHogSettings, logger: logging.Logger | Any) -> dict[str, Any]:
    """``tenacity.Retrying`` arguments for one call: PostHog's retryable failures, ``max_retries`` times."""
    attempts = settings.max_retries + 1

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "Retrying in %.1f s (attempt %d of %d failed): %s", delay, state.attempt_number, attempts, error
        )

    wait = WaitForPostHog(settings.backoff, settings.backoff_max)
    return _retrying(retry_if_exception(is_retryable), stop_after_attempt(attempts), wait, log_retry)


def parse_retry_after(value: str | None) -> float | None:
    """Read a ``Retry-After`` header: seconds, or an HTTP date (RFC 9110 allows both)."""
    if not value:
        return None
    value = value.strip()
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def row_wait_kwargs(timeout: float, retry: Any) -> dict[str, Any]:
    """``tenacity.Retrying`` arguments: while ``retry`` says a new backfill is not visible yet, ask again
    (soon, then every 2 s) for at most ``timeout`` seconds (one try for 0)."""
    return _retrying(retry, stop_after_delay(timeout), wait_exponential(multiplier=0.1, max=2.0))


def slot_wait_kwargs(timeout: float, interval: float, logger: logging.Logger | Any) -> dict[str, Any]:
    """``tenacity.Retrying`` arguments: while PostHog has no free backfill slot, try again every ``interval``
    seconds for at most ``timeout`` seconds, saying so in the log."""

    def log_wait(retry_state: RetryCallState) -> None:
        logger.warning(
            "PostHog runs as many backfills as it allows; trying again in %.0f s (waited %.0f s of %.0f s).",
            interval,
            retry_state.seconds_since_start or 0.0,
            timeout,
        )

    busy = retry_if_exception(lambda e: isinstance(e, PostHogRateLimitError) and e.code == TOO_MANY_BACKFILLS)
    return _retrying(busy, stop_after_delay(timeout), wait_fixed(interval), log_wait)


# -- the request budget of the async hooks --------------------------------------------------------

# Say at most this often that the budget is short.
_REPORT_EVERY = 60.0


class _Window:
    """At most ``limit`` requests in any ``seconds``-long window, each counted from when it may go until
    ``seconds`` after its answer (PostHog counts it somewhere in between)."""

    # While every counted request is still in flight, look again this often.
    _RECHECK = 0.05

    def __init__(self, limit: float, seconds: float) -> None:
        self.limit = max(1, int(limit))  # a share below one request still lets one through
        self.seconds = seconds
        self.in_flight = 0
        self.answered: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        """Seconds until one more request fits (0 when it does)."""
        while self.answered and now - self.answered[0] >= self.seconds:
            self.answered.popleft()
        if self.in_flight + len(self.answered) < self.limit:
            return 0.0
        return self.answered[0] + self.seconds - now if self.answered else self._RECHECK


class _Pace:
    """On average ``limit`` requests per ``seconds``, in bursts of at most ``burst`` (a token bucket), so a
    binding hour's budget spreads polls across the hour instead of spending it in the first minutes."""

    def __init__(self, limit: float, seconds: float, burst: float) -> None:
        self.rate, self.burst = limit / seconds, max(1.0, burst)
        self.tokens, self.at = self.burst, time.monotonic()

    def wait_time(self, now: float) -> float:
        """Seconds until one more request fits (0 when it does)."""
        self.tokens, self.at = min(self.burst, self.tokens + (now - self.at) * self.rate), now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


class RequestBudget:
    """The shared budget of one host and key in one event loop.

    :param per_minute: requests a minute at most.
    :param per_hour: requests an hour at most.
    :param label: how the budget is named in the log (host only, never the key).
    """

    def __init__(self, per_minute: float, per_hour: float, label: str) -> None:
        self.windows = (_Window(per_minute, 60.0), _Window(per_hour, 3600.0))
        # Five minutes' worth of the hour's average at once, then the average: never a silent hour.
        self.pace = _Pace(per_hour, 3600.0, burst=per_hour / 12)
        self.label = label
        self.paused_until = 0.0
        self.waiting = 0
        self._turn = asyncio.Lock()
        self._in_flight: dict[Any, asyncio.Future[Any]] = {}
        self._reported = 0.0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request's place in the budget while it is sent and answered."""
        await self.acquire()
        try:
            yield
        finally:
            answered = time.monotonic()
            for window in self.windows:
                window.in_flight -= 1
                window.answered.append(answered)

    async def acquire(self) -> None:
        """Wait for a place, in arrival order (a pause after a 429 holds everyone)."""
        self.waiting += 1
        try:
            async with self._turn:
                while True:
                    now = time.monotonic()
                    waits = [window.wait_time(now) for window in self.windows]
                    delay = max(self.paused_until - now, self.pace.wait_time(now), *waits)
                    if delay <= 0:
                        break
                    # Said while requests are held (once a minute at most), not after the wait.
                    if delay >= 1.0 and now - self._reported >= _REPORT_EVERY:
                        self._reported = now
                        log.warning(
                            "The request budget for %s is short: %d waiting, the next for %.0f s more (polls "
                            "are stretched). Poll less often or raise the connection's request budget.",
                            self.label,
                            self.waiting,
                            delay,
                        )
                    # Look again at least once a minute: a held wait is never silent for long.
                    await asyncio.sleep(min(delay, _REPORT_EVERY))
                self.pace.tokens -= 1
                for window in self.windows:
                    window.in_flight += 1
        finally:
            self.waiting -= 1

    def sent_within(self, now: float) -> tuple[int, int]:
        """Requests answered or in flight in the last minute and in the last hour."""
        return tuple(  # type: ignore[return-value]
            window.in_flight + sum(1 for moment in window.answered if now - moment < window.seconds)
            for window in self.windows
        )

    async def send(self, coalesce_key: Any, send: Callable[[], Awaitable[T]]) -> T:
        """Send one request within the budget, sharing an identical one in flight: each sharer gets its own
        copy of the answer (or the same error), and sends its own request if the sender is cancelled.

        :param coalesce_key: what makes two requests identical; None never shares.
        :param send: sends the request.
        """
        while coalesce_key is not None and coalesce_key in self._in_flight:
            shared = self._in_flight[coalesce_key]
            # asyncio.wait raises only when this wait itself is cancelled, and never cancels ``shared``.
            await asyncio.wait({shared})
            if not shared.cancelled():
                return copy.deepcopy(shared.result())
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if coalesce_key is not None:
            self._in_flight[coalesce_key] = future
        try:
            async with self.slot():
                result = await send()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as error:
            if isinstance(error, PostHogRateLimitError):
                # Every request on this key waits PostHog's Retry-After (else 30 s), at most 120 s.
                wait = min(30.0 if error.retry_after is None else error.retry_after, MAX_RETRY_AFTER)
                if (until := time.monotonic() + wait) > self.paused_until:
                    self.paused_until = until
                    log.warning(
                        "PostHog throttled the key for %s: all its requests wait %.0f s.", self.label, wait
                    )
            future.set_exception(error)
            future.exception()  # retrieved: a lone request's failure is not "never retrieved"
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if coalesce_key is not None:
                self._in_flight.pop(coalesce_key, None)


_budgets = weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, RequestBudget]]()


def request_budget(settings: PostHogSettings) -> RequestBudget:
    """The budget shared by every async hook of this event loop with the same host and key."""
    budgets = _budgets.setdefault(asyncio.get_running_loop(), {})
    digest = hashlib.blake2b(f"{settings.base_url}\x1f{settings.api_key}".encode(), digest_size=8).hexdigest()
    if digest not in budgets:
        budgets[digest] = RequestBudget(
            settings.requests_per_minute, settings.requests_per_hour, label=settings.base_url
        )
    return budgets[digest]
