"""How the hooks send a request: the sync client (one keep-alive ``requests`` session) and the async client
(one ``httpx.AsyncClient``) drive the same :class:`Exchange`, each with its own I/O. Why each limit exists
(deadline, body cap, same-origin redirects): docs/airflow-internals.md, "The transport's limits"."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import socket
import ssl
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from airflow.sdk import BaseHook
from tenacity import AsyncRetrying, Retrying

from airflow_provider_phenv import __version__
from airflow_provider_phenv.errors import (
    PostHogAPIError,
    PostHogConnectionConfigError,
    PostHogDeadlineError,
    PostHogRateLimitError,
    PostHogRedirectError,
    PostHogResponseTooLargeError,
    PostHogServerError,
    PostHogTransportError,
    PostHogUnexpectedResponseError,
    PostHogWriteOutcomeUnknownError,
    error_class_for_status,
    parse_error_body,
)
from airflow_provider_phenv.hooks.calls import ApiCall, ListPager, LogsPager
from airflow_provider_phenv.hooks.settings import (
    AMBIGUOUS_STATUSES,
    HookOptions,
    PostHogSettings,
    origin_of,
    parse_retry_after,
    request_budget,
    retry_kwargs,
    settings_from_connection,
    without_userinfo,
)
from airflow_provider_phenv.validation import check_project_id

if TYPE_CHECKING:
    import requests
    from typing_extensions import Self

#: Bytes asked from the transport per read.
CHUNK_BYTES = 64 * 1024
#: Most bytes inflated per step, so a 64 KB gzip chunk never inflates to 64 MB in one call.
DECODE_STEP = 256 * 1024
#: The encodings this provider asks for (``Accept-Encoding``) and can decode under a cap.
ACCEPT_ENCODING = "gzip, deflate"
#: Redirects followed within one attempt (307/308 to the same origin only).
MAX_REDIRECTS = 5
T = TypeVar("T")


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``, or raise ``asyncio.TimeoutError`` after ``seconds``; unlike 3.11's ``wait_for``,
    a cancellation arriving as it answers is raised, not swallowed (docs/airflow-internals.md)."""
    if sys.version_info < (3, 11):
        return await asyncio.wait_for(awaitable, seconds)
    async with asyncio.timeout(seconds):
        return await awaitable


# -- the body --------------------------------------------------------------------------------------


class ResponseProblem(Exception):
    """A response that cannot be read within the limits; the message says why."""


class BodyTooLarge(ResponseProblem):
    """The body, decoded, is larger than the limit."""


class BodyDecoder:
    """Collect a response body from raw chunks, decoding ``gzip``/``deflate`` under a size cap.

    :param content_encoding: the response's ``Content-Encoding`` header, or None.
    :param limit: largest decoded size in bytes.
    :param content_length: the response's ``Content-Length`` header, to refuse early.
    """

    def __init__(self, content_encoding: str | None, limit: int, content_length: str | None = None) -> None:
        self.limit = limit
        self.raw_bytes = 0
        self._body = bytearray()
        encoding = (content_encoding or "identity").strip().lower() or "identity"
        self._encoding = "gzip" if encoding == "x-gzip" else encoding
        if self._encoding not in ("identity", "gzip", "deflate"):
            raise ResponseProblem(
                f"the body is encoded as {self._encoding[:40]!r}; only {ACCEPT_ENCODING} were asked for"
            )
        wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(self._encoding)
        self._decoder: Any = None if wbits is None else zlib.decompressobj(wbits)
        self._started = False
        declared = content_length.strip() if content_length else ""
        if self._encoding == "identity" and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(self._too_large(f"Content-Length {int(declared):,}"))

    def _too_large(self, what: str) -> str:
        return f"the body ({what}) is larger than max_body_bytes={self.limit:,}"

    def _append(self, data: bytes) -> None:
        if len(self._body) + len(data) > self.limit:
            raise BodyTooLarge(self._too_large("more than that decoded"))
        self._body += data

    def feed(self, chunk: bytes) -> None:
        """Add one raw chunk; raises :class:`BodyTooLarge` as soon as the cap is passed."""
        self.raw_bytes += len(chunk)
        if self.raw_bytes > self.limit:
            raise BodyTooLarge(self._too_large(f"more than {self.limit:,} bytes on the wire"))
        if self._decoder is None:
            self._append(chunk)
            return
        data = chunk
        while data:
            try:
                # At most one byte past the room left: the cap is seen without inflating further.
                out = self._decoder.decompress(data, min(DECODE_STEP, self.limit - len(self._body) + 1))
            except zlib.error as error:
                # "deflate" should be zlib-wrapped; some servers send raw deflate (urllib3 accepts both).
                if self._encoding == "deflate" and not self._started:
                    self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._started = True
                    continue
                raise ResponseProblem(f"the {self._encoding} body cannot be decoded ({error})") from None
            self._started = True
            self._append(out)
            data = self._decoder.unconsumed_tail
            if self._decoder.eof:
                rest = self._decoder.unused_data
                # gzip allows several members one after the other; anything else after the end is ignored.
                if rest and self._encoding == "gzip" and rest[:2] == b"\x1f\x8b":
                    self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data = rest
                else:
                    data = b""

    def finish(self) -> bytes:
        """The decoded body."""
        if self._decoder is not None and not self._decoder.eof:
            try:
                self._append(self._decoder.flush())
            except zlib.error as error:
                raise ResponseProblem(f"the {self._encoding} body cannot be decoded ({error})") from None
        return bytes(self._body)


# -- the sync deadline -----------------------------------------------------------------------------

_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("phenv_deadline", default=None)


class Deadline:
    """The end of one sync HTTP attempt (a context manager): its sockets are shut down when it passes.

    :param seconds: how long the attempt may take in all.
    """

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._token: contextvars.Token[Deadline | None]  # set by __enter__
        # A blocking read cannot be cancelled: a watchdog thread shuts its socket down instead.
        self._watchdog = threading.Timer(seconds, self.fire)
        self._watchdog.daemon, self._watchdog.name = True, "posthog-deadline"

    def watch(self, sock: Any) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it already has)."""
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            if not self.fired:
                self._sockets.append(sock)
                return
        _shutdown(sock)

    def fire(self) -> None:
        """Mark the deadline passed and shut down the attempt's sockets."""
        with self._lock:
            self.fired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shutdown(sock)

    def check(self) -> None:
        """Fire now if the deadline has passed (between reads, for a read that returned)."""
        if not self.fired and time.monotonic() >= self.at:
            self.fire()

    def __enter__(self) -> Deadline:
        self._watchdog.start()
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._watchdog.cancel()
        _CURRENT.reset(self._token)
        with self._lock:
            self._sockets = []


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for an SSLSocket: the blocked read gets EOF at once.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch(sock: Any) -> Any:
    # The current attempt's deadline, if any, shuts ``sock`` down when it passes (None is ignored).
    deadline = _CURRENT.get()
    if deadline is not None:
        deadline.watch(sock)
    return sock


@functools.cache
def watched_adapter_class() -> type:
    """A ``requests`` adapter whose sockets obey the current :class:`Deadline`."""
    # Built on first use: requests and urllib3 cost ~30 ms to import.
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def watched(pool: type, connection: type) -> type:
        class WatchedConnection(connection):  # type: ignore[misc,valid-type]
            def _new_conn(self) -> Any:
                return _watch(super()._new_conn())

            def request(self, *args: Any, **kwargs: Any) -> Any:
                _watch(self.sock)  # a kept-alive connection, opened by an earlier attempt
                return super().request(*args, **kwargs)

        class WatchedPool(pool):  # type: ignore[misc,valid-type]
            ConnectionCls = WatchedConnection

        return WatchedPool

    http, https = watched(HTTPConnectionPool, HTTPConnection), watched(HTTPSConnectionPool, HTTPSConnection)

    class WatchedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": http, "https": https}

    return WatchedAdapter


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The TLS context of every async hook in this process."""
    # httpx loads the CA bundle for every client it builds (about 20 ms of CPU and 0.8 MB each, even
    # for http:// URLs); a triggerer running a thousand triggers must pay that once, not per trigger.
    return httpx.create_ssl_context()


# -- one exchange: the hops of one attempt, and how each answer is judged --------------------------


class Exchange:
    """One attempt of a call, hop by hop: what to send next, how each answer is judged, the errors it raises.

    :param settings: the hook's settings.
    :param call: the call, its project resolved.
    :param url: where the first hop goes.
    """

    def __init__(self, settings: PostHogSettings, call: ApiCall, url: str) -> None:
        self.settings, self.call = settings, call
        self.url, self.params, self.redirects = url, call.params, 0

    @property
    def path(self) -> str:
        """The path of the current hop for messages: no host, no query, never the key."""
        return self.settings.scrub(urlsplit(self.url).path)

    def error(
        self, kind: type[PostHogAPIError], detail: str, path: str = "", *, unsure: bool = False, **kwargs: Any
    ) -> PostHogAPIError:
        """An error of ``kind`` about this call, at ``path`` (default: the current hop's); when the call may
        have been carried out (``unsure``) and is not repeatable, the error that its outcome is unknown."""
        call, path = self.call, path or self.path
        error = kind(method=call.method, path=path, resource=call.subject, detail=detail, **kwargs)
        if not unsure or call.repeatable:
            return error
        # A transport error's message would only add the method and path to its detail.
        cause = detail if isinstance(error, PostHogTransportError) else str(error)
        return self.error(
            PostHogWriteOutcomeUnknownError,
            f"the request may or may not have been carried out ({cause})",
            path,
            status_code=kwargs.get("status_code"),
            hint="It was not sent again, to avoid a duplicate; look up whether it exists before retrying.",
        )

    def unexpected(
        self,
        status: int,
        detail: str,
        kind: type[PostHogUnexpectedResponseError] = PostHogUnexpectedResponseError,
        **kwargs: Any,
    ) -> PostHogAPIError:
        """An answer that cannot be trusted; a write may have been carried out all the same."""
        return self.error(kind, self.settings.scrub(detail), status_code=status, unsure=True, **kwargs)

    def deadline_error(self, path: str) -> PostHogAPIError:
        cause = (
            f"no complete answer within request_deadline={self.settings.request_deadline:g} s "
            f"(connect, redirects, headers and body together)"
        )
        return self.error(PostHogDeadlineError, cause, path, unsure=True, request_sent=True)

    def transport_failure(self, error: BaseException, path: str, *, sent: bool) -> PostHogAPIError:
        """A request that got no answer: its outcome unknown for a write that may have been sent."""
        lines = str(error).strip().splitlines()
        cause = self.settings.scrub(f"{type(error).__name__}: {lines[0] if lines else type(error).__name__}")
        return self.error(PostHogTransportError, cause, path, unsure=sent, request_sent=sent)

    def redirected(self, status: int, headers: Any) -> bool:
        """Whether the answer is a redirect to follow; if so, the next hop is set."""
        # Only 307/308 (method and body kept) to the configured origin: the key goes nowhere else.
        if not 300 <= status < 400:
            return False
        if status == 304:
            raise self.unexpected(
                status, "HTTP 304 Not Modified answers a conditional request, and none was sent"
            )
        location = headers.get("location")
        target = urljoin(self.url, location.strip()) if location else None
        if status not in (307, 308):
            why = f"HTTP {status} redirects are not followed (only 307/308 to {self.settings.host_label})"
        elif target is None:
            why = "the redirect has no Location header"
        elif origin_of(target) != origin_of(self.settings.base_url):
            why = f"the redirect leaves {self.settings.host_label}, and the API key is sent nowhere else"
        elif self.redirects >= MAX_REDIRECTS:
            why = f"more than {MAX_REDIRECTS} redirects"
        else:
            # The Location carries its own query string.
            self.url, self.params, self.redirects = target, None, self.redirects + 1
            return True
        shown = self.settings.scrub(without_userinfo(target))[:200] if target else "no Location header"
        raise self.unexpected(
            status, f"redirect to {shown} not followed: {why}", PostHogRedirectError, location=shown
        )

    @contextlib.contextmanager
    def reading(self, status: int, headers: Any) -> Iterator[BodyDecoder]:
        """The decoder to feed the body to; a body not readable within the limits is raised as an error."""
        limit = self.settings.max_body_bytes
        try:
            yield BodyDecoder(headers.get("content-encoding"), limit, headers.get("content-length"))
        except BodyTooLarge as problem:
            raise self.unexpected(status, str(problem), PostHogResponseTooLargeError) from None
        except ResponseProblem as problem:
            raise self.unexpected(status, str(problem)) from None

    def result(self, status: int, headers: Any, body: bytes) -> Any:
        """The parsed answer of a final (non-redirect) response, checked against the call's shape."""
        if status >= 400:
            raise self.api_error(status, headers, body)
        if not 200 <= status < 300:
            raise self.unexpected(status, f"unexpected HTTP status {status}")
        empty = not body.strip()
        try:
            value = None if empty else json.loads(body)
        except (ValueError, RecursionError) as error:
            detail = parse_error_body(body, None).get("detail") or "response is not JSON"
            if isinstance(error, RecursionError):
                detail = "the JSON is nested too deeply to read"
            elif not detail.startswith("non-JSON"):
                detail = f"response is not JSON: {detail}"
            raise self.unexpected(status, detail) from None
        if problem := self.call.expect(value):
            problem = problem.replace("got null", "got an empty body") if empty else problem
            raise self.unexpected(status, f"unexpected answer: {problem}")
        return value

    def api_error(self, status: int, headers: Any, body: bytes) -> PostHogAPIError:
        """PostHog's error answer as the error class callers branch on, with a hint."""
        envelope = parse_error_body(body, headers.get("content-type"))
        # Whatever answered may echo the request (the key included): never let it into a message.
        envelope = {key: self.settings.scrub(value) if value else value for key, value in envelope.items()}
        envelope["detail"] = envelope.get("detail") or "empty response body"
        kind = error_class_for_status(status)
        if kind is PostHogServerError and not self.call.retry_server_errors:
            kind = PostHogAPIError  # not a PostHogServerError: never retried
        if kind is PostHogRateLimitError:
            envelope["retry_after"] = parse_retry_after(headers.get("retry-after"))
        hint = self.hint(status, envelope)
        unsure = status in AMBIGUOUS_STATUSES
        return self.error(
            kind, envelope.pop("detail"), status_code=status, hint=hint, unsure=unsure, **envelope
        )

    def hint(self, status: int, envelope: dict[str, Any]) -> str | None:
        """What to check after PostHog's error answer, if this provider knows."""
        call, project, detail = self.call, self.call.project_id, (envelope.get("detail") or "").lower()
        user = call.body.get("user_uuid") if isinstance(call.body, dict) else None
        values = {"host": self.settings.host_label, "conn": self.settings.conn_id, "project": project}
        for (code, text, suffix), hint in _HINTS.items():
            if status == code and text in detail and call.path.endswith(suffix):
                return hint.format(user=user, **values)
        if status != 404:
            return None
        where = next((text for kind, text in _WHERE.items() if call.resource.startswith(kind)), "the id")
        return (
            f"PostHog has no {call.resource} in project {project}: check {where}, and that project_id "
            f"{project} is the project that owns it."
        )


#: Hints by (status, substring of PostHog's lower-cased detail, path suffix); the first match wins.
_HINTS = {
    (401, "", ""): (
        "{host} rejected the personal API key of connection {conn!r}: check the key, and that the host is "
        "your PostHog region (https://us.posthog.com or https://eu.posthog.com) or self-hosted URL."
    ),
    (404, "project not found", ""): (
        "Project {project} does not exist on {host}: check the connection's project_id (the number after "
        "/project/ in PostHog's URLs) and that the host is the region (US or EU) that holds it."
    ),
    (400, "lowest restriction level", ""): (
        "Collaborators need restriction_level=37 and PostHog's paid access-control feature in the "
        "organization (without it every dashboard acts as 21)."
    ),
    (400, "no access to the project", ""): (
        "User {user} is not a member of project {project}: invite them in PostHog (Settings > Members), or "
        "check the UUID."
    ),
    (400, "user does not exist", ""): "No active PostHog user has UUID {user}: check Settings > Members.",
    # Older builds gave the destination test endpoints an INTERNAL scope no key can hold.
    (403, "'internal'", ""): (
        "This PostHog build does not let personal API keys run destination tests (they need its INTERNAL "
        "scope); upgrade PostHog or skip the test (leave PostHogTestBatchExportOperator out of the DAG)."
    ),
    (403, "does not support personal api key access", "logs/"): (
        "This PostHog build does not let personal API keys read batch export logs; upgrade PostHog, or "
        "wait on the export's runs instead of its logs."
    ),
    (403, "does not support personal api key access", ""): (
        "This PostHog build does not accept personal API keys on this endpoint; upgrade PostHog."
    ),
    (403, "scope", ""): "Add that scope to the personal API key in PostHog (Settings > Personal API keys).",
    # PostHog's DashboardSerializer.update: only the owner and project admins (docs §7.2).
    (403, "restriction", ""): (
        "Only the dashboard's creator and project admins may change its restriction_level: use the key of "
        "one of them in connection {conn!r}, or leave restriction_level unchanged."
    ),
    (403, "project", ""): "Check project_id {project}, and that connection {conn!r}'s key may use it.",
}
#: Where a 404's id is found in PostHog, by the start of the call's resource.
_WHERE = {
    "batch export ": "the id in PostHog under Data pipelines > Destinations (it is in the export's URL)",
    "dashboard ": "the id in PostHog under Dashboards (the number in the dashboard's URL)",
}


# -- what both hooks share -------------------------------------------------------------------------


class PostHogHookBase(BaseHook):
    """What the sync and async hooks share: connection settings, URLs and error hints."""

    conn_name_attr = "posthog_conn_id"
    default_conn_name = "posthog_default"
    conn_type = "posthog"
    hook_name = "PostHog"

    def __init__(self, posthog_conn_id: str = default_conn_name, **options: Any) -> None:
        """
        :param posthog_conn_id: Airflow connection id of type ``posthog``.
        :param options: :class:`~airflow_provider_phenv.hooks.settings.HookOptions` (``timeout``,
            ``max_retries``, ``backoff``...); each one left out comes from the connection's extra.
        """
        super().__init__()
        self.posthog_conn_id = posthog_conn_id
        self.options = HookOptions.of(options)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form's fields for Airflow < 3.2 with the FAB provider (3.2+ reads provider info)."""
        from airflow_provider_phenv import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(posthog_conn_id={self.posthog_conn_id!r})"

    @staticmethod
    def _project(settings: PostHogSettings, project_id: int | str | None) -> str:
        if project_id not in (None, ""):
            return check_project_id(project_id)
        if settings.project_id is None:
            raise PostHogConnectionConfigError(
                f"No project_id given, and connection {settings.conn_id!r} has no extra 'project_id'."
            )
        return settings.project_id

    def _prepare(self, settings: PostHogSettings, call: ApiCall) -> tuple[ApiCall, str]:
        """The call with its project resolved (still before any request), and its URL."""
        # Resolved here, not in each endpoint, so one call description serves both hooks.
        if not call.global_path:
            call = replace(call, project_id=self._project(settings, call.project_id))
        if call.next_url is not None:
            # PostHog builds ``next`` from the Host header it saw (behind a proxy, maybe an internal
            # name): re-pointed at the configured host, which is also the only one that gets the key.
            base, link = urlsplit(settings.base_url), urlsplit(call.next_url)
            return call, urlunsplit((base.scheme, base.netloc, link.path, link.query, ""))
        if call.global_path:
            return call, f"{settings.base_url}/api/{call.path}"
        return call, f"{settings.base_url}/api/{settings.api_prefix}/{call.project_id}/{call.path}"

    def _pager(self, settings: PostHogSettings, call: ApiCall, kind: type[ListPager | LogsPager]) -> Any:
        """The pages of a list call, recognised by the URLs they are sent to."""
        return kind(
            self._prepare(settings, call)[0],
            settings.max_pages,
            lambda page: settings.scrub(self._prepare(settings, page)[1]),
        )

    @staticmethod
    def _headers(settings: PostHogSettings) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {settings.api_key}",
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
            "User-Agent": f"airflow-provider-phenv/{__version__}",
        }


# -- the two clients -------------------------------------------------------------------------------


class SyncClient(PostHogHookBase):
    """What :class:`~airflow_provider_phenv.hooks.posthog.PostHogHook` sends its calls with."""

    _retrying = Retrying

    @cached_property
    def settings(self) -> PostHogSettings:
        """The connection, read once per hook."""
        conn = self.get_connection(self.posthog_conn_id)
        return settings_from_connection(conn, conn.extra_dejson, self.options)

    @cached_property
    def session(self) -> requests.Session:
        """One session per hook, so all requests of a task reuse one TCP connection."""
        import requests

        session = requests.Session()
        adapter = watched_adapter_class()()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.trust_env = self.settings.use_env_proxies
        session.headers.update(self._headers(self.settings))
        return session

    def get_conn(self) -> requests.Session:
        """Return the hook's HTTP session."""
        return self.session

    def close(self) -> None:
        """Close the HTTP session and its connections."""
        if (session := self.__dict__.pop("session", None)) is not None:
            session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, call: ApiCall) -> Any:
        call, url = self._prepare(self.settings, call)
        retrying = self._retrying(**retry_kwargs(self.settings, self.log))
        return retrying(self._send_once, self.settings, call, url)

    def _send_once(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        """One attempt: the request, any same-origin redirects, and the body, within the deadline."""
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error
        from urllib3.exceptions import NewConnectionError

        exchange = Exchange(settings, call, url)
        path = exchange.path
        self.log.debug("PostHog request %s %s", call.method, path)
        with Deadline(settings.request_deadline) as deadline:
            try:
                return self._exchange(exchange, deadline)
            except (requests.RequestException, Urllib3Error, OSError) as error:
                deadline.check()
                if deadline.fired:
                    raise exchange.deadline_error(path) from None
                if isinstance(error, ValueError):  # InvalidHeader, InvalidURL...: refused before sending
                    # Its text may quote a header (the key): not kept.
                    detail = f"the request could not be built ({type(error).__name__}); nothing was sent"
                    raise exchange.error(PostHogAPIError, detail, path, status_code=None) from None
                # Only a connection never opened proves the request did not reach PostHog: a connect
                # timeout, or urllib3's NewConnectionError (refused, DNS) wrapped in ConnectionError.
                root = getattr(error.args[0], "reason", error.args[0]) if error.args else None
                refused = isinstance(error, requests.ConnectionError) and isinstance(root, NewConnectionError)
                sent = not isinstance(error, requests.ConnectTimeout) and not refused
                raise exchange.transport_failure(error, path, sent=sent) from None

    def _exchange(self, exchange: Exchange, deadline: Deadline) -> Any:
        settings, call = exchange.settings, exchange.call
        while True:
            response = self.session.request(
                call.method,
                exchange.url,
                params=exchange.params,
                json=call.body,
                timeout=(settings.connect_timeout, settings.timeout),
                allow_redirects=False,
                stream=True,
            )
            try:
                status, headers = response.status_code, response.headers
                if exchange.redirected(status, headers):
                    continue
                with exchange.reading(status, headers) as decoder:
                    for chunk in response.raw.stream(CHUNK_BYTES, decode_content=False):
                        decoder.feed(chunk)
                        deadline.check()
                    body = decoder.finish()
                if deadline.fired:
                    raise exchange.deadline_error(exchange.path)
            finally:
                response.close()
            return exchange.result(status, headers, body)

    def _paginate(
        self, call: ApiCall, kind: type[ListPager | LogsPager] = ListPager
    ) -> Iterator[dict[str, Any]]:
        """Every result of a paginated list, page by page; a list that never ends is an error."""
        pager = self._pager(self.settings, call, kind)
        while pager.call is not None:
            yield from pager.take(self._call(pager.call))

    def _collect(self, call: ApiCall) -> list[dict[str, Any]]:
        return list(self._paginate(call))


class AsyncClient(PostHogHookBase):
    """What :class:`~airflow_provider_phenv.hooks.posthog.PostHogAsyncHook` sends its calls with."""

    _retrying = AsyncRetrying
    _settings: PostHogSettings | None = None
    _client: httpx.AsyncClient | None = None

    def __init__(
        self,
        posthog_conn_id: str = PostHogHookBase.default_conn_name,
        *,
        keepalive: float = 120.0,
        **options: Any,
    ) -> None:
        """Also the parameters of :class:`PostHogHookBase`.

        :param keepalive: seconds an idle connection stays open; above the poll interval, or polls handshake.
        """
        super().__init__(posthog_conn_id, **options)
        self._keepalive = keepalive

    async def get_settings(self) -> PostHogSettings:
        """Read the connection once, without blocking the event loop."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.posthog_conn_id, hook=type(self))
            self._settings = settings_from_connection(conn, await get_async_extra_dejson(conn), self.options)
        return self._settings

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            settings = await self.get_settings()
            self._client = httpx.AsyncClient(
                headers=self._headers(settings),
                timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
                verify=shared_ssl_context(),
                limits=httpx.Limits(keepalive_expiry=self._keepalive),
                follow_redirects=False,
                trust_env=settings.use_env_proxies,
            )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _call(self, call: ApiCall) -> Any:
        settings = await self.get_settings()
        call, url = self._prepare(settings, call)
        budget = request_budget(settings)
        # Identical reads in flight at the same moment are sent once; writes never are.
        same = (url, json.dumps(call.params, sort_keys=True, default=str)) if call.method == "GET" else None
        retrying = self._retrying(**retry_kwargs(settings, self.log))
        return await retrying(budget.send, same, lambda: self._send_once(settings, call, url))

    async def _send_once(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        """One attempt, cancelled when the request deadline passes (body and redirects included)."""
        exchange = Exchange(settings, call, url)
        path = exchange.path
        try:
            return await within(settings.request_deadline, self._exchange(exchange))
        except asyncio.TimeoutError:
            raise exchange.deadline_error(path) from None

    async def _exchange(self, exchange: Exchange) -> Any:
        client, call = await self._get_client(), exchange.call
        while True:
            try:
                async with client.stream(
                    call.method, exchange.url, params=exchange.params, json=call.body
                ) as response:
                    status, headers = response.status_code, response.headers
                    if exchange.redirected(status, headers):
                        continue
                    with exchange.reading(status, headers) as decoder:
                        async for chunk in response.aiter_raw(CHUNK_BYTES):
                            decoder.feed(chunk)
                        body = decoder.finish()
            except httpx.TransportError as error:
                sent = not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))
                raise exchange.transport_failure(error, exchange.path, sent=sent) from None
            return exchange.result(status, headers, body)

    async def _paginate(
        self, call: ApiCall, kind: type[ListPager | LogsPager] = ListPager
    ) -> AsyncIterator[dict[str, Any]]:
        """As the sync client's."""
        pager = self._pager(await self.get_settings(), call, kind)
        while pager.call is not None:
            for result in pager.take(await self._call(pager.call)):
                yield result

    async def _collect(self, call: ApiCall) -> list[dict[str, Any]]:
        return [result async for result in self._paginate(call)]
