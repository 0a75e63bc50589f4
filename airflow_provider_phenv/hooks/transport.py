"""
The hooks' transport: what the sync hook (one keep-alive ``requests`` session) and the async
hook (one ``httpx.AsyncClient``, the connection read without blocking the event loop) share and
how each sends a request.

Every attempt runs under the request deadline (:class:`Deadline`) and the body limit
(:class:`BodyDecoder`), is retried by tenacity with the policy of :mod:`.retry`, follows redirects
only to the same origin, and turns what went wrong into the typed errors of
:mod:`airflow_provider_phenv.errors`. The requests themselves are described in :mod:`.calls`;
:mod:`.posthog` has one short method per endpoint. Why each limit exists, and the Airflow and
``requests`` behaviour behind them: docs/airflow-internals.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import heapq
import itertools
import json
import os
import socket
import ssl
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any
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
from airflow_provider_phenv.hooks.calls import ApiCall, ListPager
from airflow_provider_phenv.hooks.options import (
    HookOptions,
    PostHogSettings,
    origin_of,
    settings_from_connection,
    without_userinfo,
)
from airflow_provider_phenv.hooks.retry import (
    AMBIGUOUS_STATUSES,
    parse_retry_after,
    request_budget,
    retry_kwargs,
)
from airflow_provider_phenv.validation import check_project_id

if TYPE_CHECKING:
    import requests
    from typing_extensions import Self


#: Bytes asked from the transport per read.
CHUNK_BYTES = 64 * 1024
#: Most bytes inflated per step: the decoded body grows by this much at a time, never by a whole
#: cap's worth in one call (a 64 KB gzip chunk can inflate to 64 MB).
DECODE_STEP = 256 * 1024
#: The encodings this provider asks for (``Accept-Encoding``) and can decode under a cap.
ACCEPT_ENCODING = "gzip, deflate"


class ResponseProblem(Exception):
    """A response that cannot be read within the limits; the message says why."""


class BodyTooLarge(ResponseProblem):
    """The body, decoded, is larger than the limit."""


class BodyDecoder:
    """
    Collect a response body from raw chunks, decoding ``gzip``/``deflate`` under a size cap.

    :param content_encoding: the response's ``Content-Encoding`` header, or None.
    :param limit: largest decoded size in bytes.
    :param content_length: the response's ``Content-Length`` header, to refuse early.
    """

    def __init__(self, content_encoding: str | None, limit: int, content_length: str | None = None) -> None:
        self.limit = limit
        self.raw_bytes = 0
        self._body = bytearray()
        self._encoding = (content_encoding or "identity").strip().lower()
        if self._encoding in ("", "identity"):
            self._encoding = "identity"
        elif self._encoding == "x-gzip":
            self._encoding = "gzip"
        elif self._encoding not in ("gzip", "deflate"):
            raise ResponseProblem(
                f"the body is encoded as {self._encoding[:40]!r}; only {ACCEPT_ENCODING} were asked for"
            )
        self._decoder: Any = self._new_decoder()
        self._started = False
        declared = content_length.strip() if content_length else ""
        if self._encoding == "identity" and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(self._too_large(f"Content-Length {int(declared):,}"))

    def _new_decoder(self, raw_deflate: bool = False) -> Any:
        if self._encoding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self._encoding == "deflate":
            # "deflate" should be zlib-wrapped; some servers send raw deflate (urllib3 accepts both).
            return zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS)
        return None

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
                if self._encoding == "deflate" and not self._started:
                    self._decoder = self._new_decoder(raw_deflate=True)
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
                    self._decoder = self._new_decoder()
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


# -- the sync deadline ------------------------------------------------------------------------------

_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("phenv_deadline", default=None)


class Deadline:
    """
    The end of one sync HTTP attempt. Use as a context manager around the attempt: sockets opened
    or reused inside it are shut down by the watchdog thread when the deadline passes, which ends
    any blocked read at once; ``fired`` then says why the read failed.

    :param seconds: how long the attempt may take in all.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._token: contextvars.Token[Deadline | None] | None = None

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
        _REAPER.add(self)
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
        with self._lock:
            self._sockets = []
        _REAPER.discard(self)


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for an SSLSocket: the blocked read gets EOF at once.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Reaper:
    """One daemon thread that fires the deadlines of every sync hook in the process."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._live: set[int] = set()
        self._counter = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._wake:
            heapq.heappush(self._heap, (deadline.at, next(self._counter), deadline))
            self._live.add(id(deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="posthog-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()

    def discard(self, deadline: Deadline) -> None:
        with self._wake:
            self._live.discard(id(deadline))

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and id(self._heap[0][2]) not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait(60.0)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                at, _, deadline = self._heap[0]
                delay = at - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(id(deadline))
            deadline.fire()


_REAPER = _Reaper()


def _reset_after_fork() -> None:
    # A forked task process inherits neither the thread nor a usable lock: start afresh.
    global _REAPER
    _REAPER = _Reaper()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _watched_adapter_class() -> type:
    """Built on first use: ``requests`` and ``urllib3`` cost ~30 ms to import."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def watched(base: type) -> type:
        class Watched(base):  # type: ignore[misc,valid-type]
            def _new_conn(self) -> Any:
                sock = super()._new_conn()
                deadline = _CURRENT.get()
                if deadline is not None:
                    deadline.watch(sock)
                return sock

            def request(self, *args: Any, **kwargs: Any) -> Any:
                deadline = _CURRENT.get()
                if deadline is not None and self.sock is not None:
                    deadline.watch(self.sock)  # a kept-alive connection, opened by an earlier attempt
                return super().request(*args, **kwargs)

        Watched.__name__ = f"Watched{base.__name__}"
        return Watched

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = watched(HTTPConnection)

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = watched(HTTPSConnection)

    class WatchedAdapter(HTTPAdapter):
        """An adapter whose connections register their sockets with the current :class:`Deadline`."""

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}

    return WatchedAdapter


_ADAPTER_CLASS: type | None = None


def watched_adapter() -> Any:
    """A new ``requests`` adapter whose sockets obey the current :class:`Deadline`."""
    global _ADAPTER_CLASS
    if _ADAPTER_CLASS is None:
        _ADAPTER_CLASS = _watched_adapter_class()
    return _ADAPTER_CLASS()


USER_AGENT = f"airflow-provider-phenv/{__version__}"
#: Redirects followed within one attempt (307/308 to the same origin only).
MAX_REDIRECTS = 5


class Hop:
    """
    Where one attempt of a call is, hop by hop: the URL and query to send next, and how each answer
    is judged. The sync and the async client drive the same hops, each with its own I/O.
    """

    def __init__(self, hook: PostHogHookBase, settings: PostHogSettings, call: ApiCall, url: str) -> None:
        self.hook, self.settings, self.call = hook, settings, call
        self.url, self.params, self.count = url, call.params, 0

    @property
    def path(self) -> str:
        return self.hook._path(self.settings, self.url)

    def redirected(self, status: int, headers: Any) -> bool:
        """Whether the answer is a redirect to follow; if so, the next hop is set (same origin only)."""
        if not 300 <= status < 400:
            return False
        # The Location carries its own query string.
        self.url = self.hook._redirect_target(
            self.settings, self.call, self.path, self.url, status, headers, self.count
        )
        self.params, self.count = None, self.count + 1
        return True

    def decoder(self, headers: Any) -> BodyDecoder:
        return BodyDecoder(
            headers.get("content-encoding"), self.settings.max_body_bytes, headers.get("content-length")
        )

    def unreadable(self, status: int, problem: ResponseProblem) -> PostHogAPIError:
        return self.hook._problem(self.settings, self.call, self.path, status, problem)

    def result(self, status: int, headers: Any, body: bytes) -> Any:
        return self.hook._result(self.settings, self.call, self.path, status, headers, body)


class PostHogHookBase(BaseHook):
    """What the sync and async hooks share: connection settings, URLs and response handling."""

    conn_name_attr = "posthog_conn_id"
    default_conn_name = "posthog_default"
    conn_type = "posthog"
    hook_name = "PostHog"

    def __init__(self, posthog_conn_id: str = default_conn_name, **options: Any) -> None:
        """
        :param posthog_conn_id: Airflow connection id of type ``posthog``.
        :param options: :class:`~airflow_provider_phenv.hooks.options.HookOptions` (``timeout``,
            ``max_retries``, ``backoff``...); each one left out comes from the connection's extra.
        """
        super().__init__()
        self.posthog_conn_id = posthog_conn_id
        self.options = HookOptions.of(options)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """
        The connection form's relabelled and hidden fields, for Airflow < 3.2 with the FAB provider.

        Airflow 3.2+ reads the same metadata from ``get_provider_info()`` and never calls this.
        """
        from airflow_provider_phenv import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(posthog_conn_id={self.posthog_conn_id!r})"

    def _settings_from(self, conn: Any, extra: dict[str, Any]) -> PostHogSettings:
        return settings_from_connection(conn, extra, self.options)

    def _retry_kwargs(self, settings: PostHogSettings) -> dict[str, Any]:
        return retry_kwargs(
            max_retries=settings.max_retries,
            backoff=settings.backoff,
            backoff_max=settings.backoff_max,
            logger=self.log,
        )

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
        """
        The call with its project resolved (still before any request), and the URL to send it to.

        Resolving here rather than in each endpoint is what lets one call description serve both
        hooks, although only the async hook has to await its settings.
        """
        if not call.global_path:
            call = replace(call, project_id=self._project(settings, call.project_id))
        if call.next_url is not None:
            return call, self._same_origin_url(settings, call.next_url)
        if call.global_path:
            return call, f"{settings.base_url}/api/{call.path}"
        return call, f"{settings.base_url}/api/{settings.api_prefix}/{call.project_id}/{call.path}"

    def _pager(self, settings: PostHogSettings, call: ApiCall) -> ListPager:
        """The pages of a list call, recognised by the URLs they are sent to."""
        return ListPager(
            self._prepare(settings, call)[0],
            settings.max_pages,
            lambda page: settings.scrub(self._prepare(settings, page)[1]),
        )

    @staticmethod
    def _same_origin_url(settings: PostHogSettings, url: str) -> str:
        """
        A pagination ``next`` link, re-pointed at the configured host.

        PostHog builds ``next`` from the Host header it saw; behind a proxy that may be an internal
        name. Keeping the configured scheme and host also means the key never goes anywhere else.
        """
        base = urlsplit(settings.base_url)
        link = urlsplit(url)
        return urlunsplit((base.scheme, base.netloc, link.path, link.query, ""))

    def _error(
        self,
        settings: PostHogSettings,
        call: ApiCall,
        path: str,
        status: int,
        headers: Any,
        body: bytes,
    ) -> PostHogAPIError:
        envelope = parse_error_body(body, headers.get("content-type"))
        # Whatever answered may echo the request (the key included): never let it into a message.
        envelope = {key: None if value is None else settings.scrub(value) for key, value in envelope.items()}
        if not envelope.get("detail"):
            envelope["detail"] = "empty response body"
        kwargs: dict[str, Any] = {
            "status_code": status,
            "method": call.method,
            "path": path,
            "resource": call.subject,
            "hint": self._hint(settings, call, status, envelope),
            **envelope,
        }
        error_class = error_class_for_status(status)
        if error_class is PostHogServerError and not call.retry_server_errors:
            error_class = PostHogAPIError  # not a PostHogServerError: never retried
        if error_class is PostHogRateLimitError:
            kwargs["retry_after"] = parse_retry_after(headers.get("retry-after"))
        error = error_class(**kwargs)
        if not call.repeatable and status in AMBIGUOUS_STATUSES:
            return self._outcome_unknown(call, path, status, str(error))
        return error

    @staticmethod
    def _hint(settings: PostHogSettings, call: ApiCall, status: int, envelope: dict[str, Any]) -> str | None:
        detail = (envelope.get("detail") or "").lower()
        user = call.body.get("user_uuid") if isinstance(call.body, dict) else None
        if status == 401:
            return (
                f"{settings.host_label} rejected the personal API key of connection {settings.conn_id!r}: "
                "check the key, and that the host is your PostHog region (https://us.posthog.com or "
                "https://eu.posthog.com) or your self-hosted URL."
            )
        if status == 403 and "'internal'" in detail:
            # Older builds gave the destination test endpoints an INTERNAL scope no key can hold.
            return (
                "This PostHog build does not let personal API keys run destination tests (they need "
                "its INTERNAL scope, which no key can have); upgrade PostHog or skip the test "
                "(leave PostHogTestBatchExportOperator out of the DAG)."
            )
        if status == 403 and "does not support personal api key access" in detail:
            if call.path.endswith("logs/"):
                return (
                    "This PostHog build does not let personal API keys read batch export logs (its "
                    "logs endpoint had no key scope); upgrade PostHog, or wait on the export's runs "
                    "instead of its logs."
                )
            return "This PostHog build does not accept personal API keys on this endpoint; upgrade PostHog."
        if status == 403 and "scope" in detail:
            return "Add that scope to the personal API key in PostHog (Settings > Personal API keys)."
        if status == 403 and "restriction" in detail:
            # PostHog's DashboardSerializer.update: only the owner and project admins (docs §7.2).
            return (
                "Only the dashboard's creator and project admins may change its restriction_level: use "
                f"a personal API key of one of them in connection {settings.conn_id!r}, or leave "
                "restriction_level unchanged."
            )
        if status == 403 and "project" in detail:
            return (
                f"Check project_id {call.project_id} and that the key of connection "
                f"{settings.conn_id!r} may use that project."
            )
        if status == 400 and "lowest restriction level" in detail:
            return (
                "Collaborators need restriction_level=37 on the dashboard and PostHog's paid "
                "access-control feature in the organization (without it every dashboard acts as 21)."
            )
        if status == 400 and "no access to the project" in detail:
            return (
                f"User {user} is not a member of project {call.project_id}: invite them in PostHog "
                "(Settings > Members), or check the UUID."
            )
        if status == 400 and "user does not exist" in detail:
            return f"No active PostHog user has UUID {user}: check it in PostHog (Settings > Members)."
        if status == 404:
            return _not_found_hint(settings, call, detail)
        return None

    @staticmethod
    def _outcome_unknown(
        call: ApiCall, path: str, status: int | None, cause: str
    ) -> PostHogWriteOutcomeUnknownError:
        return PostHogWriteOutcomeUnknownError(
            status_code=status,
            method=call.method,
            path=path,
            resource=call.subject,
            detail=f"the request may or may not have been carried out ({cause})",
            hint="It was not sent again, to avoid a duplicate; look up whether it exists before retrying.",
        )

    @staticmethod
    def _path(settings: PostHogSettings, url: str) -> str:
        """The path of a URL for messages: no host, no query, never the key."""
        return settings.scrub(urlsplit(url).path)

    def _unexpected(
        self,
        settings: PostHogSettings,
        call: ApiCall,
        path: str,
        status: int | None,
        detail: str,
        error_class: type[PostHogUnexpectedResponseError] = PostHogUnexpectedResponseError,
        **kwargs: Any,
    ) -> PostHogAPIError:
        """
        An answer that cannot be trusted. For a call that is not safe to repeat (a create) the
        server may have carried it out all the same, so the outcome is unknown and callers look up.
        """
        error = error_class(
            status_code=status,
            method=call.method,
            path=path,
            resource=call.subject,
            detail=settings.scrub(detail),
            **kwargs,
        )
        if not call.repeatable:
            return self._outcome_unknown(call, path, status, str(error))
        return error

    def _problem(
        self,
        settings: PostHogSettings,
        call: ApiCall,
        path: str,
        status: int | None,
        problem: ResponseProblem,
    ) -> PostHogAPIError:
        """A body that could not be read within the limits."""
        if isinstance(problem, BodyTooLarge):
            return self._unexpected(settings, call, path, status, str(problem), PostHogResponseTooLargeError)
        return self._unexpected(settings, call, path, status, str(problem))

    def _deadline_error(self, settings: PostHogSettings, call: ApiCall, path: str) -> PostHogAPIError:
        cause = (
            f"no complete answer within request_deadline={settings.request_deadline:g} s "
            f"(connect, redirects, headers and body together)"
        )
        if not call.repeatable:
            return self._outcome_unknown(call, path, None, cause)
        return PostHogDeadlineError(
            request_sent=True, method=call.method, path=path, resource=call.subject, detail=cause
        )

    def _transport_failure(
        self, settings: PostHogSettings, call: ApiCall, path: str, error: BaseException, *, sent: bool
    ) -> PostHogAPIError:
        """A request that got no answer: its outcome unknown for a create that may have been sent."""
        cause = settings.scrub(f"{type(error).__name__}: {first_line(error)}")
        if sent and not call.repeatable:
            return self._outcome_unknown(call, path, None, cause)
        return PostHogTransportError(
            request_sent=sent, method=call.method, path=path, resource=call.subject, detail=cause
        )

    def _redirect_target(
        self,
        settings: PostHogSettings,
        call: ApiCall,
        path: str,
        url: str,
        status: int,
        headers: Any,
        hops: int,
    ) -> str:
        """
        Where a 3xx answer leads, if it is followed: 307 or 308 (method and body kept) to the
        configured origin, at most :data:`MAX_REDIRECTS` times per attempt. Anything else is an
        error naming the status and the target, never a success: the key goes nowhere else, and
        a 301/302/303 would turn a POST into a GET.
        """
        if status == 304:
            raise self._unexpected(
                settings,
                call,
                path,
                status,
                "HTTP 304 Not Modified answers a conditional request, and none was sent",
            )
        location = headers.get("location")
        target = urljoin(url, location.strip()) if location else None
        shown = settings.scrub(without_userinfo(target))[:200] if target else "no Location header"
        why = None
        if status not in (307, 308):
            why = f"HTTP {status} redirects are not followed (only 307/308 to {settings.host_label})"
        elif target is None:
            why = "the redirect has no Location header"
        elif origin_of(target) != settings.origin:
            why = f"the redirect leaves {settings.host_label}, and the API key is sent nowhere else"
        elif hops >= MAX_REDIRECTS:
            why = f"more than {MAX_REDIRECTS} redirects"
        if why is None:
            assert target is not None
            return target
        return self._raise_redirect(settings, call, path, status, shown, why)

    def _raise_redirect(
        self, settings: PostHogSettings, call: ApiCall, path: str, status: int, shown: str, why: str
    ) -> Any:
        raise self._unexpected(
            settings,
            call,
            path,
            status,
            f"redirect to {shown} not followed: {why}",
            PostHogRedirectError,
            location=shown,
        )

    def _result(
        self, settings: PostHogSettings, call: ApiCall, path: str, status: int, headers: Any, body: bytes
    ) -> Any:
        """The parsed answer of a final (non-redirect) response, or its error."""
        if status >= 400:
            raise self._error(settings, call, path, status, headers, body)
        if not 200 <= status < 300:
            raise self._unexpected(settings, call, path, status, f"unexpected HTTP status {status}")
        return self._decode(settings, call, path, status, body)

    def _decode(self, settings: PostHogSettings, call: ApiCall, path: str, status: int, body: bytes) -> Any:
        """The JSON of a 2xx body, checked against the call's expected shape."""
        if not body.strip():
            value: Any = None
            problem: str | None = (call.expect(value) or "").replace("got null", "got an empty body")
        else:
            try:
                value = json.loads(body)
            except (ValueError, RecursionError) as error:
                detail = parse_error_body(body, None).get("detail") or "response is not JSON"
                if isinstance(error, RecursionError):
                    detail = "the JSON is nested too deeply to read"
                elif not detail.startswith("non-JSON"):
                    detail = f"response is not JSON: {detail}"
                raise self._unexpected(settings, call, path, status, detail) from None
            problem = call.expect(value)
        if problem:
            raise self._unexpected(settings, call, path, status, f"unexpected answer: {problem}")
        return value

    @staticmethod
    def _headers(settings: PostHogSettings) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {settings.api_key}",
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
            "User-Agent": USER_AGENT,
        }


def _not_found_hint(settings: PostHogSettings, call: ApiCall, detail: str) -> str:
    """What was not found, and where to look it up."""
    project = call.project_id
    owner = f"and that project_id {project} is the project that owns it"
    if "project not found" in detail:
        return (
            f"Project {project} does not exist on {settings.host_label}: check the connection's "
            "project_id (the number after /project/ in PostHog's URLs) and that the host is the "
            "region (US or EU) that holds it."
        )
    if call.resource.startswith("batch export "):
        return (
            f"PostHog has no {call.resource} in project {project}: check the id in PostHog under "
            f"Data pipelines > Destinations (it is in the export's URL), {owner}."
        )
    if call.resource.startswith("dashboard "):
        return (
            f"PostHog has no {call.resource} in project {project}: check the id in PostHog under "
            f"Dashboards (the number in the dashboard's URL), {owner}."
        )
    return f"PostHog has no {call.resource} in project {project}: check the id, {owner}."


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The TLS context of every async hook in this process."""
    # httpx loads the CA bundle for every client it builds (about 20 ms of CPU and 0.8 MB each, even
    # for http:// URLs); a triggerer running a thousand triggers must pay that once, not per trigger.
    return httpx.create_ssl_context()


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, for a one-line error detail."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class SyncClient(PostHogHookBase):
    """What :class:`~airflow_provider_phenv.hooks.posthog.PostHogHook` sends its calls with."""

    @cached_property
    def settings(self) -> PostHogSettings:
        """The connection, read once per hook."""
        conn = self.get_connection(self.posthog_conn_id)
        return self._settings_from(conn, conn.extra_dejson)

    @cached_property
    def session(self) -> requests.Session:
        """One session per hook, so all requests of a task reuse one TCP connection."""
        import requests

        session = requests.Session()
        # Redirects are followed by the hook itself (same origin only); reads obey the deadline.
        adapter = watched_adapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # No HTTP_PROXY/ALL_PROXY for plain http: the proxy would read the key in clear text.
        session.trust_env = self.settings.use_env_proxies
        session.headers.update(self._headers(self.settings))
        return session

    def get_conn(self) -> requests.Session:
        """Return the hook's HTTP session."""
        return self.session

    def close(self) -> None:
        """Close the HTTP session and its connections."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------------

    def _call(self, call: ApiCall) -> Any:
        settings = self.settings
        call, url = self._prepare(settings, call)
        for attempt in Retrying(**self._retry_kwargs(settings)):
            with attempt:
                return self._send_once(settings, call, url)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _send_once(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        """One attempt: the request, any same-origin redirects, and the body, within the deadline."""
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        path = self._path(settings, url)
        self.log.debug("PostHog request %s %s", call.method, path)
        with Deadline(settings.request_deadline) as deadline:
            try:
                return self._exchange(settings, call, url, deadline)
            except (requests.RequestException, Urllib3Error, OSError) as error:
                deadline.check()
                if deadline.fired:
                    raise self._deadline_error(settings, call, path) from None
                raise self._transport_error(settings, call, path, error) from None

    def _exchange(self, settings: PostHogSettings, call: ApiCall, url: str, deadline: Deadline) -> Any:
        hop = Hop(self, settings, call, url)
        while True:
            response = self.session.request(
                call.method,
                hop.url,
                params=hop.params,
                json=call.body,
                timeout=(settings.connect_timeout, settings.timeout),
                allow_redirects=False,
                stream=True,
            )
            try:
                status, headers = response.status_code, response.headers
                if hop.redirected(status, headers):
                    continue
                try:
                    decoder = hop.decoder(headers)
                    for chunk in response.raw.stream(CHUNK_BYTES, decode_content=False):
                        decoder.feed(chunk)
                        deadline.check()
                    body = decoder.finish()
                except ResponseProblem as problem:
                    raise hop.unreadable(status, problem) from None
                if deadline.fired:
                    raise self._deadline_error(settings, call, hop.path)
            finally:
                response.close()
            return hop.result(status, headers, body)

    def _transport_error(
        self, settings: PostHogSettings, call: ApiCall, path: str, error: BaseException
    ) -> PostHogAPIError:
        import requests
        from urllib3.exceptions import NewConnectionError

        if isinstance(
            error, (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, ValueError)
        ) and not isinstance(error, requests.exceptions.ChunkedEncodingError):
            # Refused by the client before sending. Its text may quote a header (the key): not kept.
            return PostHogAPIError(
                status_code=None,
                method=call.method,
                path=path,
                resource=call.subject,
                detail=f"the request could not be built ({type(error).__name__}); nothing was sent",
            )
        # Only a connection that was never opened proves the request did not reach PostHog: a
        # connect timeout, or urllib3's NewConnectionError (refused, DNS) wrapped in ConnectionError.
        reason = error.args[0] if error.args else None
        refused = isinstance(error, requests.ConnectionError) and isinstance(
            getattr(reason, "reason", reason), NewConnectionError
        )
        sent = not isinstance(error, requests.ConnectTimeout) and not refused
        return self._transport_failure(settings, call, path, error, sent=sent)

    def _paginate(self, call: ApiCall) -> Iterator[dict[str, Any]]:
        """
        Yield every result of a paginated list (limit/offset or cursor), following ``next`` links;
        a link back to a page already read, or more than ``max_pages`` pages, is an error.
        """
        pager = self._pager(self.settings, call)
        while pager.call is not None:
            yield from pager.take(self._call(pager.call))


class AsyncClient(PostHogHookBase):
    """What :class:`~airflow_provider_phenv.hooks.posthog.PostHogAsyncHook` sends its calls with."""

    _settings: PostHogSettings | None = None
    _client: httpx.AsyncClient | None = None

    def __init__(
        self,
        posthog_conn_id: str = PostHogHookBase.default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        keepalive: float = 120.0,
        max_body_bytes: int | None = None,
        request_deadline: float | None = None,
        max_pages: int | None = None,
    ) -> None:
        """
        :param posthog_conn_id: Airflow connection id of type ``posthog``.
        :param timeout: as for :class:`PostHogHook`; so are ``max_retries``, ``backoff``,
            ``backoff_max``, ``max_body_bytes``, ``request_deadline`` and ``max_pages``.
        :param keepalive: seconds an idle connection is kept open. Keep it longer than the poll
            interval, or every poll pays a new TCP (and TLS) handshake.
        """
        super().__init__(
            posthog_conn_id,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            backoff_max=backoff_max,
            max_body_bytes=max_body_bytes,
            request_deadline=request_deadline,
            max_pages=max_pages,
        )
        self._keepalive = keepalive

    async def get_settings(self) -> PostHogSettings:
        """Read the connection once, without blocking the event loop."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.posthog_conn_id, hook=type(self))
            self._settings = self._settings_from(conn, await get_async_extra_dejson(conn))
        return self._settings

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            settings = await self.get_settings()
            self._client = httpx.AsyncClient(
                headers=self._headers(settings),
                timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
                verify=shared_ssl_context(),
                limits=httpx.Limits(keepalive_expiry=self._keepalive),
                # Redirects are followed by the hook itself (same origin only).
                follow_redirects=False,
                # No HTTP_PROXY/ALL_PROXY for plain http: the proxy would read the key in clear text.
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
        budget = request_budget(
            settings.base_url, settings.api_key, settings.requests_per_minute, settings.requests_per_hour
        )
        # Identical reads in flight at the same moment are sent once; writes never are.
        same = (url, json.dumps(call.params, sort_keys=True, default=str)) if call.method == "GET" else None
        async for attempt in AsyncRetrying(**self._retry_kwargs(settings)):
            with attempt:
                return await budget.send(same, lambda: self._send_once(settings, call, url))
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _send_once(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        """One attempt, cancelled when the request deadline passes (body and redirects included)."""
        try:
            return await asyncio.wait_for(self._exchange(settings, call, url), settings.request_deadline)
        except asyncio.TimeoutError:
            raise self._deadline_error(settings, call, self._path(settings, url)) from None

    async def _exchange(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        client = await self._get_client()
        hop = Hop(self, settings, call, url)
        while True:
            try:
                async with client.stream(call.method, hop.url, params=hop.params, json=call.body) as response:
                    status, headers = response.status_code, response.headers
                    if hop.redirected(status, headers):
                        continue
                    try:
                        decoder = hop.decoder(headers)
                        async for chunk in response.aiter_raw(CHUNK_BYTES):
                            decoder.feed(chunk)
                        body = decoder.finish()
                    except ResponseProblem as problem:
                        raise hop.unreadable(status, problem) from None
            except httpx.TransportError as error:
                sent = not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))
                raise self._transport_failure(settings, call, hop.path, error, sent=sent) from None
            return hop.result(status, headers, body)

    async def _paginate(self, call: ApiCall) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`PostHogHook._paginate`."""
        pager = self._pager(await self.get_settings(), call)
        while pager.call is not None:
            for result in pager.take(await self._call(pager.call)):
                yield result
