"""
Fixtures of the hostile-server tests: a scripted server on 127.0.0.1, a connection pointing at it
(or at it standing in front of the emulator), and the three ways in: sync hook, async hook, trigger.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from phenv_emulator import SEED

from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook, PostHogHook
from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportLogsTrigger
from tests.helpers.hostile_server import HostileServer
from tests.helpers.sensor_modes import run_trigger, utcnow

KEY = "phx_hostile0123456789abcdefKEY"
EXPORT_ID = SEED.s3_export_id
#: Tight limits so each hostile case ends in a second or two.
FAST = {"timeout": 0.3, "request_deadline": 0.8, "max_retries": 0, "backoff": 0.01, "backoff_max": 0.02}


def connection(url: str, key: str = KEY, **extra: Any) -> str:
    return json.dumps(
        {"conn_type": "posthog", "host": url, "password": key, "extra": {"project_id": "1", **extra}}
    )


@pytest.fixture
def hostile(monkeypatch):
    """A hostile server with no upstream; ``posthog_default`` points at it."""
    with HostileServer(max_seconds=10) as server:
        monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection(server.url))
        yield server


@pytest.fixture
def fronted(emulator, monkeypatch):
    """A hostile server in front of the emulator (unmatched requests pass through)."""
    with HostileServer(upstream=emulator.url, max_seconds=10) as server:
        monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", connection(server.url, key=emulator.api_key))
        yield server


def sync_get(**hook_params: Any) -> Any:
    with PostHogHook(**{**FAST, **hook_params}) as hook:
        return hook.get_batch_export(EXPORT_ID)


def async_get(**hook_params: Any) -> Any:
    async def main() -> Any:
        async with PostHogAsyncHook(**{**FAST, **hook_params}) as hook:
            return await hook.get_batch_export(EXPORT_ID)

    return asyncio.run(main())


def trigger_event(timeout: float = 20.0, **hook_params: Any) -> dict[str, Any]:
    """The one event of a logs trigger polling the connection's host."""
    trigger = PostHogBatchExportLogsTrigger(
        batch_export_id=EXPORT_ID,
        since=utcnow().isoformat(),
        criteria={"message_pattern": "finished"},
        poll_interval=0.05,
        hook_params={**FAST, **hook_params},
    )
    return run_trigger(trigger, timeout).payload


@pytest.fixture
def no_key_anywhere(caplog):
    """
    Collects every text a test produced; the test asserts the key is in none of them. urllib3's
    own DEBUG lines are left out: they log the URL a server chose, which Airflow's masker covers
    in task logs (the hook registers the key with it).
    """
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    def check(*more: Any, key: str = KEY) -> None:
        records = [record.getMessage() for record in caplog.records if not record.name.startswith("urllib3")]
        everything = records + texts + [str(m) for m in more]
        variants = {key, key.strip(), repr(key)[1:-1], json.dumps(key)[1:-1]}
        leaks = [text for text in everything for variant in variants if variant and variant in text]
        assert leaks == [], f"the key leaked into {len(leaks)} text(s): {leaks[:2]}"

    check.texts = texts  # type: ignore[attr-defined]
    return check
