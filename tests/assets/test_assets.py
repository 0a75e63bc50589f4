"""The posthog:// asset URI scheme, the asset-with-watcher helper and outlet event extras."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import Asset, AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors
from phenv_emulator import SEED

import airflow_provider_phenv
from airflow_provider_phenv.lineage import (
    attach_outlet_extras,
    batch_export_asset,
    batch_export_outlet_extra,
    batch_export_uri,
    create_asset,
    parse_uri,
)
from airflow_provider_phenv.triggers.batch_exports import PostHogBatchExportRunEventTrigger

EXPORT_ID = SEED.s3_export_id
URI = f"posthog://eu.posthog.com/12345/batch_exports/{EXPORT_ID}"


def test_the_scheme_is_registered_with_its_handler_factory_and_converter():
    (entry,) = airflow_provider_phenv.get_provider_info()["asset-uris"]
    assert entry == {
        "schemes": ["posthog"],
        "handler": "airflow_provider_phenv.lineage.sanitize_uri",
        "factory": "airflow_provider_phenv.lineage.create_asset",
        "to_openlineage_converter": "airflow_provider_phenv.lineage.asset_to_openlineage",
    }


@pytest.mark.parametrize(
    "host", ["eu.posthog.com", "https://eu.posthog.com", "https://EU.posthog.com/", " eu.posthog.com "]
)
def test_uri_from_host_in_any_form(host):
    assert batch_export_uri(EXPORT_ID.upper(), project_id="12345", host=host) == URI


def test_airflow_normalises_a_posthog_uri_through_the_handler():
    asset = Asset(uri=f"posthog://EU.PostHog.com/12345/batch_exports/{EXPORT_ID.upper()}/")
    assert asset.uri == URI
    assert parse_uri(asset.uri) == {
        "host": "eu.posthog.com",
        "project_id": "12345",
        "batch_export_id": EXPORT_ID,
    }


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("posthog:///12345/batch_exports/" + EXPORT_ID, "it has no host"),
        ("posthog://eu.posthog.com/12345/dashboards/7", "its path is not"),
        ("posthog://eu.posthog.com/batch_exports/" + EXPORT_ID, "its path is not"),
        ("posthog://eu.posthog.com/12345/batch_exports/not-a-uuid", "batch_export_id"),
        ("posthog://eu.posthog.com/abc/batch_exports/" + EXPORT_ID, "project_id"),
        ("posthog://eu.posthog.com/12345/batch_exports/" + EXPORT_ID + "?x=1", "query string"),
    ],
)
def test_a_malformed_uri_fails_when_the_dag_is_parsed(uri, problem):
    with pytest.raises(ValueError, match="Invalid PostHog asset URI") as raised:
        Asset(uri=uri)
    assert problem in str(raised.value)
    assert "expected posthog://<host>/<project_id>/batch_exports/<batch export UUID>" in str(raised.value)


def test_factory_builds_a_plain_asset():
    asset = create_asset(batch_export_id=EXPORT_ID, project_id=12345, host="eu.posthog.com")
    assert (asset.uri, asset.watchers) == (URI, [])


def test_batch_export_asset_carries_its_watcher():
    asset = batch_export_asset(
        EXPORT_ID,
        project_id=12345,
        host="https://eu.posthog.com",
        statuses=("Completed", "Failed"),
        poll_interval=30,
    )
    assert (asset.name, asset.uri, asset.group) == (URI, URI, "posthog")
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, PostHogBatchExportRunEventTrigger)
    assert watcher.name == f"posthog_runs_completed_failed_{EXPORT_ID}"
    assert watcher.trigger.serialize()[1] == {
        "batch_export_id": EXPORT_ID,
        "statuses": ["Completed", "Failed"],
        "poll_interval": 30.0,
        "posthog_conn_id": "posthog_default",
        "project_id": "12345",
        "shared_poll": True,
    }
    # The same watcher at every parse: Airflow matches watcher triggers by this hash.
    again = batch_export_asset(
        EXPORT_ID,
        project_id="12345",
        host="eu.posthog.com",
        statuses=["Completed", "Failed"],
        poll_interval=30,
    )
    assert again.watchers[0].trigger.hash(*again.watchers[0].trigger.serialize()) == watcher.trigger.hash(
        *watcher.trigger.serialize()
    )


def test_batch_export_asset_refuses_the_current_alias():
    with pytest.raises(ValueError, match="numeric id"):
        batch_export_asset(EXPORT_ID, project_id="@current", host="eu.posthog.com")


RUNS = [
    {
        "id": "r2",
        "status": "Completed",
        "data_interval_start": "2026-11-28T10:00:00Z",
        "data_interval_end": "2026-11-28T11:00:00Z",
        "records_completed": 5,
    },
    {
        "id": "r1",
        "status": "Completed",
        "data_interval_start": "2026-11-28T09:00:00Z",
        "data_interval_end": "2026-11-28T10:00:00Z",
        "records_completed": 7,
    },
    {
        "id": "r3",
        "status": "Failed",
        "data_interval_start": "2026-11-28T11:00:00Z",
        "data_interval_end": "2026-11-28T12:00:00Z",
        "records_completed": None,
    },
]


def test_outlet_extra_summarises_the_runs():
    extra = batch_export_outlet_extra(EXPORT_ID, RUNS, backfill_id="b1")
    assert extra == {
        "batch_export_id": EXPORT_ID,
        "backfill_id": "b1",
        "run_ids": ["r2", "r1", "r3"],
        "statuses": ["Completed", "Failed"],
        "data_interval_start": "2026-11-28T09:00:00Z",
        "data_interval_end": "2026-11-28T12:00:00Z",
        "records_completed": 12,
    }
    assert json.loads(json.dumps(extra)) == extra
    assert batch_export_outlet_extra(EXPORT_ID, [])["records_completed"] is None


class FakeTask:
    def __init__(self, outlets):
        self.outlets = outlets


def test_extras_go_to_every_asset_outlet_of_the_task():
    asset = create_asset(batch_export_id=EXPORT_ID, project_id=12345, host="eu.posthog.com")
    other = Asset(uri="s3://bucket/posthog")
    events = OutletEventAccessors()
    context = {"task": FakeTask([asset, other, AssetAlias("later")]), "outlet_events": events}
    extra = batch_export_outlet_extra(EXPORT_ID, RUNS[:1])
    assert attach_outlet_extras(context, extra) == 2
    assert events[asset].extra == extra
    assert events[other].extra == extra


def test_no_outlets_no_extras():
    assert (
        attach_outlet_extras({"task": FakeTask([]), "outlet_events": OutletEventAccessors()}, {"a": 1}) == 0
    )
    assert attach_outlet_extras({}, {"a": 1}) == 0
