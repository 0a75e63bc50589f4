"""
Issue 15 #2 and #4: bodies that never end or inflate without bound, and servers that answer one
byte at a time. Each path (sync hook, async hook, trigger) fails within its limits, naming them.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest

from airflow_provider_phenv.errors import (
    PostHogDeadlineError,
    PostHogResponseTooLargeError,
    PostHogUnexpectedResponseError,
)
from tests.helpers.hostile_server import drip, endless, gzip_bomb, gzip_of_zeros, json_reply, reply
from tests.hostile.conftest import FAST, async_get, sync_get, trigger_event

LIMIT = 4 * 1024 * 1024  # a small cap keeps these tests light; the default is 32 MiB


def _peak_growth(function) -> tuple[int, BaseException | None]:
    tracemalloc.start()
    try:
        function()
        error = None
    except Exception as raised:
        error = raised
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, error


BOMB = 1 << 26  # 64 MiB of zeros in 64 KB of gzip


def _bomb(encoding):
    gzip_of_zeros(BOMB, encoding)  # made once, before the timed request
    return gzip_bomb(BOMB, encoding=encoding)


@pytest.mark.parametrize("read", [sync_get, async_get], ids=["sync", "async"])
@pytest.mark.parametrize(
    "make",
    [lambda: _bomb("gzip"), lambda: _bomb("deflate"), endless, lambda: endless(chunked=False)],
    ids=["gzip-64MiB", "deflate-64MiB", "endless-chunked", "endless-no-length"],
)
def test_bodies_stop_at_max_body_bytes(hostile, read, make):
    hostile.on(make())
    started = time.monotonic()
    peak, error = _peak_growth(lambda: read(max_body_bytes=LIMIT, request_deadline=20))
    assert isinstance(error, PostHogResponseTooLargeError), error
    assert f"max_body_bytes={LIMIT:,}" in str(error) and "GET /api/projects/1/batch_exports/" in str(error)
    assert peak < 3 * LIMIT  # the cap, its buffer and one chunk: never the 1 GiB
    assert time.monotonic() - started < 5


def test_declared_length_over_the_cap_is_refused_before_reading(hostile):
    hostile.on(reply(200, b"x" * (LIMIT + 1)))
    with pytest.raises(PostHogResponseTooLargeError, match=f"Content-Length {LIMIT + 1:,}"):
        sync_get(max_body_bytes=LIMIT)


def test_default_cap_is_32_mib(hostile):
    hostile.on(endless())
    with pytest.raises(PostHogResponseTooLargeError, match="max_body_bytes=33,554,432"):
        sync_get(request_deadline=20)


def test_gzip_answers_within_the_cap_are_read(hostile):
    import gzip
    import json

    body = gzip.compress(json.dumps({"id": "x", "destination": None}).encode())
    hostile.on(reply(200, body, headers={"Content-Encoding": "gzip"}))
    assert sync_get()["id"] == "x"
    assert async_get()["id"] == "x"
    assert hostile.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_an_encoding_not_asked_for_is_an_error(hostile):
    hostile.on(reply(200, b"\x00\x01", headers={"Content-Encoding": "br"}))
    with pytest.raises(PostHogUnexpectedResponseError, match="encoded as 'br'"):
        sync_get()


def test_trigger_reports_a_body_over_the_cap(hostile):
    hostile.on(_bomb("gzip"))
    event = trigger_event(max_body_bytes=LIMIT)
    assert event["status"] == "error"
    assert f"max_body_bytes={LIMIT:,}" in event["message"]


@pytest.mark.parametrize("read", [sync_get, async_get], ids=["sync", "async"])
@pytest.mark.parametrize("phase", ["headers", "body"])
@pytest.mark.slow  # four cases of nearly a second of real waiting each: the --all tier
def test_a_server_dripping_bytes_hits_the_request_deadline(hostile, read, phase):
    # One byte every 0.05 s: no single read waits anywhere near the 0.3 s timeout.
    hostile.on(drip(interval=0.05, phase=phase))
    started = time.monotonic()
    with pytest.raises(PostHogDeadlineError, match=r"request_deadline=0\.8 s") as raised:
        read()
    assert 0.75 <= time.monotonic() - started < FAST["request_deadline"] + 1
    assert raised.value.request_sent is True


@pytest.mark.slow  # over a second of real waiting: the --all tier
def test_the_deadline_covers_every_retry_attempt_alike(hostile):
    hostile.on(drip(interval=0.05))
    started = time.monotonic()
    with pytest.raises(PostHogDeadlineError):
        sync_get(max_retries=1, request_deadline=0.4)
    assert len(hostile.requests) == 2  # retried like a read timeout
    assert time.monotonic() - started < 2 * 0.4 + 1


def test_trigger_reports_the_deadline(hostile):
    hostile.on(drip(interval=0.05))
    started = time.monotonic()
    event = trigger_event(request_deadline=0.4)
    assert event["status"] == "error" and "request_deadline=0.4 s" in event["message"]
    assert time.monotonic() - started < 0.4 + 1


def test_the_sync_hook_reads_normally_after_a_deadline(hostile):
    # The watchdog shut only that attempt's socket; the next attempt opens a new connection.
    hostile.on(drip(interval=0.05), times=1)
    hostile.on(json_reply({"id": "after", "destination": None}))
    from airflow_provider_phenv.hooks.posthog import PostHogHook

    with PostHogHook(**{**FAST, "max_retries": 1, "request_deadline": 0.4}) as hook:
        assert hook.get_batch_export("01900000-0000-7000-8000-0000000000e1")["id"] == "after"
        assert hook.get_batch_export("01900000-0000-7000-8000-0000000000e1")["id"] == "after"
