"""Retries through the real transport: what is re-sent, how long it waits, what is never re-sent."""

from __future__ import annotations

import socket
import time

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.errors import (
    PostHogNotFoundError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
    PostHogWriteOutcomeUnknownError,
)
from airflow_provider_phenv.hooks.posthog import PostHogHook
from tests.helpers.emulator import api_requests


@pytest.fixture
def hook(posthog_conn):
    with PostHogHook(backoff=0.01, backoff_max=0.02, max_retries=3) as hook:
        yield hook


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_for_reads(hook, emulator, status):
    emulator.faults.add("status", status=status, times=2)
    assert hook.get_batch_export(SEED.s3_export_id)["id"] == SEED.s3_export_id
    assert [r.status for r in api_requests(emulator)] == [status, status, 200]


def test_retries_give_up_with_the_last_error(hook, emulator):
    emulator.faults.add("status", status=503, times=10)
    with pytest.raises(PostHogServerError, match="HTTP 503") as raised:
        hook.pause_batch_export(SEED.s3_export_id)
    assert raised.value.status_code == 503
    assert len(api_requests(emulator)) == 4  # the first attempt and max_retries=3 more


def test_html_error_page_is_readable(hook, emulator):
    emulator.faults.add("html", status=502, times=10)
    with pytest.raises(PostHogServerError) as raised:
        hook.get_batch_export(SEED.s3_export_id)
    message = str(raised.value)
    assert "HTTP 502" in message and "non-JSON HTML response" in message and "<" not in message


@pytest.mark.slow  # about a second of real waiting: the --all tier
def test_429_waits_for_retry_after(hook, emulator):
    emulator.faults.add("status", status=429, retry_after=1, times=1)
    started = time.monotonic()
    hook.pause_batch_export(SEED.s3_export_id)
    waited = time.monotonic() - started
    sent = api_requests(emulator)
    assert [r.status for r in sent] == [429, 200]
    gap = sent[1].started_at - sent[0].started_at
    # Exactly Retry-After, not the 0.01 s backoff: 1 s plus request overhead.
    assert 1.0 <= gap < 1.5 and waited < 2.0


def test_429_on_a_create_is_retried(hook, emulator):
    emulator.faults.add("status", status=429, retry_after=0, times=1)
    created = hook.create_dashboard(name="Throttled once")
    assert [r.status for r in api_requests(emulator)] == [429, 201]
    assert [d["name"] for d in emulator.state.dashboards.values()].count("Throttled once") == 1
    assert created["name"] == "Throttled once"


def test_429_retries_exhausted(emulator, posthog_conn):
    emulator.faults.add("status", status=429, retry_after=0, times=5)
    with pytest.raises(PostHogRateLimitError) as raised:
        PostHogHook(max_retries=1, backoff=0.01).get_batch_export(SEED.s3_export_id)
    assert raised.value.retry_after == 0
    assert len(api_requests(emulator)) == 2


def test_client_errors_are_not_retried(hook, emulator):
    with pytest.raises(PostHogNotFoundError):
        hook.get_dashboard(999)
    assert len(api_requests(emulator)) == 1


def test_dropped_connection_is_retried_for_reads(hook, emulator):
    emulator.faults.add("drop", times=1)
    assert hook.get_batch_export(SEED.s3_export_id)["id"] == SEED.s3_export_id


@pytest.mark.slow  # about a second of real waiting: the --all tier
def test_slow_response_times_out_and_is_retried(emulator, posthog_conn):
    emulator.faults.add("slow", delay=1.0, times=1)
    hook = PostHogHook(timeout=0.3, backoff=0.01)
    started = time.monotonic()
    assert hook.get_batch_export(SEED.s3_export_id)["id"] == SEED.s3_export_id
    assert time.monotonic() - started < 0.9  # gave up on the slow answer instead of waiting for it
    time.sleep(1.0)  # the emulator logs the slow request once it has finished with it
    assert len(api_requests(emulator)) == 2


def test_lost_response_on_pause_is_retried_safely(hook, emulator):
    emulator.faults.add("lost_response", path="/pause", times=1)
    assert hook.pause_batch_export(SEED.s3_export_id) == {"paused": True}
    assert emulator.state.get_batch_export(SEED.s3_export_id)["paused"] is True


def test_lost_response_on_create_is_not_resent(hook, emulator):
    emulator.faults.add("lost_response", method="POST", path="/dashboards", times=1)
    with pytest.raises(PostHogWriteOutcomeUnknownError, match="may or may not have been carried out"):
        hook.create_dashboard(name="Lost answer")
    posts = [r for r in api_requests(emulator) if r.method == "POST"]
    assert len(posts) == 1
    assert [d["name"] for d in emulator.state.dashboards.values()].count("Lost answer") == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 520, 524])
def test_ambiguous_status_on_a_create_is_not_resent(hook, emulator, status):
    # A 503 (or a proxy's 520/524) can come after the create committed, like a 500/502/504.
    emulator.faults.add("status", status=status, method="POST", times=1)
    with pytest.raises(PostHogWriteOutcomeUnknownError, match=f"HTTP {status}"):
        hook.add_dashboard_collaborator(SEED.restricted_dashboard_id, SEED.bob_uuid)
    assert len(api_requests(emulator)) == 1


def test_503_on_a_read_is_retried(hook, emulator):
    emulator.faults.add("status", status=503, times=1)
    assert hook.list_dashboard_collaborators(SEED.restricted_dashboard_id) is not None
    assert [r.status for r in api_requests(emulator)] == [503, 200]


def test_refused_connection_is_retried_even_for_a_create(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nothing listens there
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTHOG_DEFAULT", f"posthog://http://:phx_k@127.0.0.1:{port}/?project_id=1"
    )
    attempts = []
    hook = PostHogHook(max_retries=2, backoff=0.01)
    monkeypatch.setattr(hook, "_send_once", _counting(hook._send_once, attempts))
    with pytest.raises(PostHogTransportError) as raised:
        hook.create_dashboard(name="never reaches PostHog")
    assert raised.value.request_sent is False
    assert len(attempts) == 3


def _counting(function, calls):
    def wrapper(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)

    return wrapper


def test_one_tcp_connection_per_hook(hook, emulator):
    hook.get_batch_export(SEED.s3_export_id)
    hook.pause_batch_export(SEED.s3_export_id)
    hook.list_dashboards()
    hook.get_batch_export_logs(SEED.s3_export_id)
    assert len({r.connection_id for r in api_requests(emulator)}) == 1
