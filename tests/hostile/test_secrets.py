"""
Issue 15 #3, #11 and #12 (userinfo): the key never appears in any message, log line or trigger
event, is never sent through a proxy over plain http, and a host's ``user:pass@`` goes nowhere.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_provider_phenv.errors import PostHogConnectionConfigError, PostHogServerError
from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook, PostHogHook
from tests.helpers.hostile_server import HostileServer, json_reply
from tests.hostile.conftest import EXPORT_ID, FAST, KEY, async_get, connection, sync_get, trigger_event

EXPORT = {"id": EXPORT_ID, "destination": None}


@pytest.mark.parametrize("tail", ["\n", "\r\n", " ", "\t\n"])
def test_a_key_with_trailing_whitespace_is_stripped(hostile, monkeypatch, tail, no_key_anywhere):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection(hostile.url, key=KEY + tail))
    hostile.on(json_reply(EXPORT))
    assert sync_get()["id"] == EXPORT_ID
    assert async_get()["id"] == EXPORT_ID
    assert [r.headers["authorization"] for r in hostile.requests] == [f"Bearer {KEY}"] * 2
    no_key_anywhere()


@pytest.mark.parametrize("inner", ["\n", "\r\n", "\x00", " ", "é"])
def test_a_key_with_a_character_inside_is_refused_without_repeating_it(
    hostile, monkeypatch, inner, no_key_anywhere
):
    broken = KEY[:10] + inner + KEY[10:]
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection(hostile.url, key=broken))
    errors = []
    for read in (sync_get, async_get):
        with pytest.raises(
            PostHogConnectionConfigError, match="the key itself is not repeated here"
        ) as raised:
            read(max_retries=5)
        errors.append(raised.value)
    event = trigger_event()
    assert event["status"] == "error" and "not repeated here" in event["message"]
    assert hostile.requests == []  # nothing sent, nothing retried
    for fragment in (KEY[:10], KEY[10:]):
        no_key_anywhere(*errors, json.dumps(event), key=fragment)


def test_a_server_echoing_the_key_does_not_put_it_in_errors(hostile, no_key_anywhere):
    def echo(request):
        return {
            "type": "server_error",
            "code": "x",
            "detail": f"bad header {request.headers['authorization']}",
        }

    hostile.on(json_reply(echo, status=500))
    with pytest.raises(PostHogServerError) as raised:
        sync_get(max_retries=2)
    assert "bad header Bearer ***" in str(raised.value)
    event = trigger_event(max_retries=1)
    no_key_anywhere(raised.value, json.dumps(event))


def test_a_next_link_carrying_the_key_stays_out_of_messages(hostile, no_key_anywhere):
    hostile.on(json_reply(lambda r: {"next": f"/api/projects/1/dashboards/{KEY}/", "results": []}))
    with PostHogHook(**FAST) as hook, pytest.raises(Exception) as raised:
        hook.list_dashboards()
    no_key_anywhere(raised.value)


@pytest.fixture
def proxy(monkeypatch):
    """A proxy named by every proxy variable, recording what is sent to it."""
    with HostileServer() as server:
        server.on(json_reply(EXPORT))
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, server.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        yield server


def test_the_key_is_never_sent_to_a_proxy_over_plain_http(hostile, proxy):
    hostile.on(json_reply(EXPORT))
    assert sync_get()["id"] == EXPORT_ID
    assert async_get()["id"] == EXPORT_ID
    trigger_event()  # the trigger's client too (its answer here is beside the point)
    assert proxy.requests == []
    assert len(hostile.requests) >= 2


def test_plain_http_to_an_allowed_remote_host_ignores_proxies_too(proxy, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTHOG_DEFAULT",
        connection("http://posthog.internal.invalid", allow_insecure_http=True),
    )
    assert PostHogHook().session.trust_env is False

    async def client_trusts_env():
        async with PostHogAsyncHook() as hook:
            return (await hook._get_client())._trust_env

    assert asyncio.run(client_trusts_env()) is False


def test_https_still_uses_the_proxy_settings(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection("https://eu.posthog.com"))
    assert PostHogHook().session.trust_env is True


@pytest.mark.parametrize(
    "host",
    [
        "https://user:s3cret@posthog.example.com",
        "user:s3cret@posthog.example.com",
        "http://:s3cret@127.0.0.1:1",
    ],
)
def test_a_host_with_userinfo_is_refused_without_repeating_it(monkeypatch, host):
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection(host))
    with pytest.raises(PostHogConnectionConfigError, match="user name or password") as raised:
        _ = PostHogHook().settings
    assert "s3cret" not in str(raised.value) and "user:" not in str(raised.value)
