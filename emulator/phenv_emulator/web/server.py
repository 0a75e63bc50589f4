"""HTTP plumbing: the threaded HTTP/1.1 server, fault application, the request log, and
:class:`PostHogEmulator`, the object tests and the CLI drive."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..store.seed import SEED
from ..store.state import EmulatorState
from ..store.switches import (
    DEFAULT_AUTO_PAUSE_THRESHOLD,
    DEFAULT_BACKFILL_ROW_DELAY,
    DEFAULT_LOG_DELAY,
    DEFAULT_MAX_CONCURRENT_BACKFILLS,
    Switches,
)
from .api import ApiRequest, handle_api, without_retry_after
from .calls import Response
from .control import PREFIX as CONTROL_PREFIX
from .control import handle_control
from .faults import FaultInjector
from .rate_limit import RateLimiter
from .request_log import RecordedRequest, RequestLog, redact


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections would otherwise make server_close() wait forever.
    block_on_close = False
    # A triggerer restarting a thousand deferred sensors connects all at once; socketserver's
    # default backlog of 5 drops those SYNs and the kernel's retransmits delay them by up to 30 s.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], emulator: PostHogEmulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator
        self.connection_ids = itertools.count(1)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def track(self, connection: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            if is_open:
                self._open.add(connection)
            else:
                self._open.discard(connection)

    def close_connections(self) -> None:
        """Shut down kept-alive connections so their handler threads end with the server."""
        with self._open_lock:
            for connection in self._open:
                with contextlib.suppress(OSError):  # already closed by the client
                    connection.shutdown(socket.SHUT_RDWR)
            self._open.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse one connection
    server_version = "PostHogEmulator/1.0"
    # Headers and body go out in two writes; with Nagle on, delayed ACKs would add ~40 ms per response.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection_id = next(self.server.connection_ids)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the request log replaces the default stderr access log."""
        if self.server.emulator.log_requests:
            super().log_message(format, *args)

    def _serve(self) -> None:
        started_at, clock = time.time(), time.perf_counter()
        split = urlsplit(self.path)
        body, body_error = _parse_json(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        emulator = self.server.emulator
        if split.path.startswith(CONTROL_PREFIX):
            response = handle_control(emulator, self.command, split.path, body, body_error)
            self._send(response, _payload(response))
            return
        query = parse_qs(split.query, keep_blank_values=True)
        answer = self._answer(split.path, split.query, query, body, body_error)
        payload = _payload(answer) if answer else b""
        # Recorded before answering, so a client that just got its response always finds the record.
        emulator.request_log.append(
            RecordedRequest(
                method=self.command,
                path=split.path,
                query=redact(query),
                body=redact(body),
                status=answer.status if answer else None,
                connection_id=self.connection_id,
                response_bytes=len(payload),
                user_agent=self.headers.get("User-Agent"),
                started_at=started_at,
                duration=time.perf_counter() - clock,
            )
        )
        if answer is None:
            self.close_connection = True  # without sending a byte
            return
        self._send(answer, payload)

    def _answer(
        self, path: str, raw_query: str, query: dict[str, list[str]], body: Any, body_error: str | None
    ) -> Response | None:
        """Apply a pending fault or handle the request; None means: close without answering."""
        emulator = self.server.emulator
        fault = emulator.faults.take(self.command, path)
        kind = fault.kind if fault else None
        if kind == "drop":
            return None  # before handling: nothing is committed
        if fault is not None and kind in ("status", "html"):
            return without_retry_after(fault.response(), emulator.state)
        if fault is not None and kind == "slow":
            time.sleep(fault.delay or 0.0)
        request = ApiRequest(
            method=self.command,
            path=path,
            raw_query=raw_query,
            query=query,
            body=body,
            body_error=body_error,
            headers=self.headers,
            base_url=f"http://{self.headers.get('Host') or self._bound_address()}",
        )
        response = without_retry_after(
            handle_api(request, emulator.state, emulator.rate_limiter), emulator.state
        )
        return None if kind == "lost_response" else response  # lost: handled and committed, never sent

    def _bound_address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def _send(self, response: Response, payload: bytes) -> None:
        self.send_response(response.status)
        if payload:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve


def _payload(response: Response) -> bytes:
    if response.body is None:
        return b""
    if isinstance(response.body, str):
        return response.body.encode()
    return json.dumps(response.body).encode()


def _parse_json(raw: bytes) -> tuple[Any, str | None]:
    """The JSON body (None when empty) and, when it is not JSON, the parser's error message."""
    if not raw.strip():
        return None, None
    try:
        return json.loads(raw), None
    except ValueError as error:
        return None, str(error)


class PostHogEmulator:
    """A local PostHog-compatible API server for tests and demos.

    ``PostHogEmulator().start()`` serves on a free port in a daemon thread; use :attr:`url` and
    :attr:`api_key` to talk to it. It is also a context manager.

    :param host: interface to bind.
    :param port: port to bind; 0 picks a free one.
    :param api_key: the seeded full-access personal API key (``SEED.api_key`` by default).
    :param rate_limit: apply PostHog's per-key throttles (480/minute, 4800/hour).
    :param log_requests: also print an access log line per request to stderr.
    :param builds: older-build switches to turn on (names of ``store.switches.OLD_BUILDS``, e.g.
        ``["level-list"]``); none plays today's PostHog.
    :param log_delay: log entries become visible up to this many seconds after their timestamp,
        not in timestamp order (§6.3); 0 for in-order visibility.
    :param seed: seed of those delays (reproducible).
    :param max_concurrent_backfills: Starting/Running backfills a team may have before a 429.
    :param backfill_row_delay: seconds from starting a backfill until its row (and first run)
        exists, as the workflow creates it (§6.9); 0 for at once.
    :param auto_pause_threshold: Failed runs among an export's last 50 that pause it (§6.9); 0 never.
    :param backdate_pauses: record every pause this many seconds earlier than it happens, so a
        pause of seconds unpaused with a backfill covers whole intervals (the demo uses it).

    :meth:`reset` (and ``POST /_emulator/reset``) restores these settings as given here.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        rate_limit: bool = False,
        log_requests: bool = False,
        *,
        builds: list[str] | tuple[str, ...] = (),
        log_delay: float = DEFAULT_LOG_DELAY,
        seed: int = 0,
        max_concurrent_backfills: int = DEFAULT_MAX_CONCURRENT_BACKFILLS,
        backfill_row_delay: float = DEFAULT_BACKFILL_ROW_DELAY,
        auto_pause_threshold: int = DEFAULT_AUTO_PAUSE_THRESHOLD,
        backdate_pauses: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.log_requests = log_requests
        switches = Switches(
            builds,
            log_delay=log_delay,
            seed=seed,
            max_concurrent_backfills=max_concurrent_backfills,
            backfill_row_delay=backfill_row_delay,
            auto_pause_threshold=auto_pause_threshold,
        )
        self.state = EmulatorState(api_key, switches, backdate_pauses=backdate_pauses)
        self.faults = FaultInjector()
        self.rate_limiter = RateLimiter(enabled=rate_limit)
        self.request_log = RequestLog()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> PostHogEmulator:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="posthog-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> PostHogEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_key(self) -> str:
        """The seeded personal API key (scopes ``["*"]``)."""
        return self.state.default_api_key

    @property
    def project_id(self) -> int:
        """The seeded project id (also the id of its primary environment)."""
        return SEED.project_id

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the request log, oldest first (control endpoints are not recorded)."""
        return self.request_log.snapshot()

    def clear_requests(self) -> None:
        """Empty the request log."""
        self.request_log.clear()

    def reset(self) -> None:
        """Restore the seed state and clear faults, throttle counters and the request log."""
        self.state.reset()
        self.faults.clear()
        self.rate_limiter.reset()
        self.request_log.clear()
