"""
The limits every response is read under, shared by the sync and the async hook.

* :class:`BodyDecoder` reads a body chunk by chunk, undoing gzip/deflate itself with a running cap
  on the decoded size, so neither a 1 MB gzip body that inflates to 1 GiB nor an endless chunked
  body can grow the process past ``max_body_bytes``.
* :class:`Deadline` bounds one whole HTTP attempt (connect, redirects, headers, body). Socket
  timeouts bound each read only, and a server that sends a byte every few seconds never trips them.
  The async hook cancels the attempt (``asyncio.wait_for``); the sync hook cannot cancel a blocking
  read, so a single watchdog thread shuts the socket down when the deadline passes and the blocked
  read returns at once. :class:`WatchedAdapter` is the ``requests`` adapter that tells the current
  deadline which sockets belong to the attempt.

Nothing here knows PostHog: the hooks turn :class:`ResponseProblem` into their errors.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import os
import socket
import threading
import time
import zlib
from typing import Any

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
