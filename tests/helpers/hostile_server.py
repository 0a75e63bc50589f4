"""
A small HTTP server that misbehaves on purpose, for the hostile-server tests and benchmark.

It is not the PostHog emulator (which models PostHog): it answers whatever each test scripts,
including what no honest server sends, and can sit in front of the emulator as a proxy that lets a
create commit and then breaks the answer. Standard library only, on 127.0.0.1 with a free port.
Every behaviour is bounded in time and bytes (``max_seconds``, ``max_bytes``) and ends when the
client hangs up or the server stops, so a test that goes wrong still ends.

Usage::

    with HostileServer() as server:
        server.on(redirect(302, "http://127.0.0.1:9/elsewhere"), path="/pause")
        server.on(json_reply({"paused": True}))            # everything else
        ...
        server.requests                                     # what arrived, in order

Rules are tried in the order added; the first that matches (``method``, a ``path`` substring,
and ``times`` not used up) answers. Without a match the server forwards to ``upstream`` if it has
one, else answers 404.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import socket
import socketserver
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

CRLF = b"\r\n"


@dataclass
class Request:
    """One request as it arrived."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int
    started_at: float = field(default_factory=time.monotonic)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Connection:
    """The client's socket, for actions: ``send`` returns False once the client has gone."""

    def __init__(self, sock: socket.socket, server: HostileServer) -> None:
        self.sock = sock
        self.server = server
        self.keep_alive = True

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.keep_alive = False
            return False

    @property
    def stopping(self) -> bool:
        return self.server.stopping.is_set()


Action = Callable[[Request, Connection], None]


@dataclass
class Rule:
    action: Action
    method: str | None = None
    path: str | None = None
    times: int | None = None
    used: int = 0

    def matches(self, request: Request) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if self.method is not None and request.method != self.method:
            return False
        return self.path is None or self.path in request.path


def _head(status: int, headers: dict[str, str]) -> bytes:
    reason = http.client.responses.get(status, "Whatever")
    lines = [f"HTTP/1.1 {status} {reason}".encode()]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
    return CRLF.join(lines) + CRLF + CRLF


def _body_of(value: Any, request: Request) -> bytes:
    if callable(value):
        value = value(request)
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


# -- actions ----------------------------------------------------------------------------------------


def reply(
    status: int = 200,
    body: Any = b"",
    *,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Action:
    """A complete answer; ``body`` is bytes, text, a JSON value or ``f(request)`` giving one."""

    def act(request: Request, conn: Connection) -> None:
        data = _body_of(body, request)
        head = {"Content-Type": content_type, "Content-Length": str(len(data)), **(headers or {})}
        conn.send(_head(status, head) + data)

    return act


def json_reply(value: Any, status: int = 200, **kwargs: Any) -> Action:
    """A JSON answer (``value`` may be ``f(request)``)."""
    return reply(status, value, **kwargs)


def redirect(status: int, location: str | Callable[[Request], str]) -> Action:
    """A redirect to ``location`` (or ``f(request)``)."""

    def act(request: Request, conn: Connection) -> None:
        target = location(request) if callable(location) else location
        conn.send(_head(status, {"Location": target, "Content-Length": "0"}))

    return act


def close() -> Action:
    """Hang up without answering."""

    def act(request: Request, conn: Connection) -> None:
        conn.keep_alive = False

    return act


def hang(seconds: float) -> Action:
    """Say nothing for ``seconds``, then hang up."""

    def act(request: Request, conn: Connection) -> None:
        conn.server.stopping.wait(seconds)
        conn.keep_alive = False

    return act


def gzip_of_zeros(decoded_bytes: int, encoding: str = "gzip") -> bytes:
    """
    A gzip (or zlib ``deflate``) body that inflates to ``decoded_bytes`` zero bytes: 1 GiB packs
    to about 1 MB. Cached: making 1 GiB takes about 3 s, so call it once before a timed request.
    """
    return _compressed_zeros(decoded_bytes, encoding)


@functools.cache
def _compressed_zeros(decoded_bytes: int, encoding: str) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = b"\0" * (1 << 20)
    parts = []
    left = decoded_bytes
    while left > 0:
        parts.append(compressor.compress(block[: min(left, len(block))]))
        left -= len(block)
    parts.append(compressor.flush())
    return b"".join(parts)


def gzip_bomb(decoded_bytes: int = 1 << 30, status: int = 200, encoding: str = "gzip") -> Action:
    """A small gzip body that inflates to ``decoded_bytes``."""

    def act(request: Request, conn: Connection) -> None:
        data = gzip_of_zeros(decoded_bytes, encoding)
        head = {
            "Content-Type": "application/json",
            "Content-Encoding": encoding,
            "Content-Length": str(len(data)),
        }
        conn.send(_head(status, head) + data)

    return act


def endless(*, chunked: bool = True, chunk_bytes: int = 64 * 1024, status: int = 200) -> Action:
    """A body that never ends (chunked, or without a length), until the client hangs up."""

    def act(request: Request, conn: Connection) -> None:
        conn.keep_alive = False
        head = {"Content-Type": "application/json"}
        head["Transfer-Encoding" if chunked else "Connection"] = "chunked" if chunked else "close"
        if not conn.send(_head(status, head)):
            return
        payload = b"[" + b"0," * (chunk_bytes // 2 - 1) + b"0"
        frame = f"{len(payload):x}".encode() + CRLF + payload + CRLF if chunked else payload
        ends = time.monotonic() + conn.server.max_seconds
        sent = 0
        while not conn.stopping and time.monotonic() < ends and sent < conn.server.max_bytes:
            if not conn.send(frame):
                return
            sent += len(frame)

    return act


def drip(*, interval: float = 1.0, phase: str = "body", status: int = 200) -> Action:
    """
    Slowloris: one byte every ``interval`` seconds, in the ``"headers"`` or the ``"body"``, so that
    no single read ever times out.
    """

    def act(request: Request, conn: Connection) -> None:
        conn.keep_alive = False
        body = json.dumps({"results": [], "next": None, "padding": "x" * 10_000}).encode()
        head = _head(status, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        if phase == "headers":
            slow, fast = head[:-2] + b"X-Slow: " + b"x" * 10_000, b""
        else:
            if not conn.send(head):
                return
            slow, fast = body, b""
        ends = time.monotonic() + conn.server.max_seconds
        for index in range(len(slow)):
            if conn.stopping or time.monotonic() >= ends or not conn.send(slow[index : index + 1]):
                return
            conn.server.stopping.wait(interval)
        conn.send(fast)

    return act


def forward(*, then: Action | None = None, delay: float = 0.0) -> Action:
    """
    Pass the request on to the upstream server (the emulator), after ``delay`` seconds; answer
    with the upstream's answer, or with ``then`` instead: the request is carried out, its answer
    replaced by a fault.
    """

    def act(request: Request, conn: Connection) -> None:
        if delay:
            conn.server.stopping.wait(delay)
        status, headers, body = conn.server.pass_upstream(request)
        if then is not None:
            then(request, conn)
            return
        reply(status, body, content_type=headers.get("content-type", "application/json"))(request, conn)

    return act


def sequence(*actions: Action) -> Action:
    """The first request gets the first action, the next one the next, the last one repeats."""
    state = {"next": 0}
    lock = threading.Lock()

    def act(request: Request, conn: Connection) -> None:
        with lock:
            index = min(state["next"], len(actions) - 1)
            state["next"] += 1
        actions[index](request, conn)

    return act


# -- the server -------------------------------------------------------------------------------------


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        hostile = self.server.hostile
        sock: socket.socket = self.request
        hostile._track(sock)
        conn = Connection(sock, hostile)
        number = next(hostile._connections)
        reader = sock.makefile("rb")
        try:
            while conn.keep_alive and not hostile.stopping.is_set():
                request = _read_request(reader, number)
                if request is None:
                    return
                hostile._record(request)
                hostile._dispatch(request, conn)
        except (OSError, ValueError):
            return
        finally:
            hostile._untrack(sock)
            try:
                reader.close()
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _read_request(reader: Any, connection: int) -> Request | None:
    line = reader.readline(65537)
    if not line:
        return None
    method, target, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        header = reader.readline(65537)
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    body = reader.read(length) if length else b""
    return Request(method=method, target=target, headers=headers, body=body, connection=connection)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # hundreds of clients connect at once in the load cases
    hostile: HostileServer


class HostileServer:
    """
    A scripted HTTP/1.1 server on ``host`` (default 127.0.0.1) and a free port.

    :param upstream: base URL of a server to forward unmatched requests to (the emulator).
    :param host: address to listen on; another loopback address (127.0.0.2) is another host.
    :param max_seconds: longest any one behaviour goes on.
    :param max_bytes: most bytes an endless body sends.
    """

    def __init__(
        self,
        upstream: str | None = None,
        *,
        host: str = "127.0.0.1",
        max_seconds: float = 30.0,
        max_bytes: int = 8 << 30,
    ) -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.host = host
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self.rules: list[Rule] = []
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._connections = iter(range(1, 1 << 62))
        self._server: _TCPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting --------------------------------------------------------------------------------

    def on(
        self, action: Action, *, method: str | None = None, path: str | None = None, times: int | None = None
    ) -> Rule:
        """Answer matching requests with ``action`` (rules are tried in the order added)."""
        rule = Rule(action, method, path, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def reset(self) -> None:
        """Forget every rule and every request."""
        with self._lock:
            self.rules.clear()
            self.requests.clear()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://{self.host}:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> HostileServer:
        self._server = _TCPServer((self.host, 0), _Handler)
        self._server.hostile = self
        # stop() waits for the serving loop to notice, up to one poll interval: each test
        # stops a server, so the interval is short.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.005,), name="hostile-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------------

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _dispatch(self, request: Request, conn: Connection) -> None:
        with self._lock:
            rule = next((rule for rule in self.rules if rule.matches(request)), None)
            if rule is not None:
                rule.used += 1
        if rule is not None:
            rule.action(request, conn)
        elif self.upstream is not None:
            forward()(request, conn)
        else:
            reply(
                404, {"type": "invalid_request", "code": "not_found", "detail": "Not found.", "attr": None}
            )(request, conn)

    def pass_upstream(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        """Send ``request`` to the upstream server; its status, headers and body."""
        assert self.upstream is not None, "no upstream to forward to"
        parts = urlsplit(self.upstream)
        client = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            skip = {"host", "content-length", "connection", "accept-encoding"}
            headers = {name: value for name, value in request.headers.items() if name not in skip}
            client.request(request.method, request.target, body=request.body or None, headers=headers)
            response = client.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            client.close()
