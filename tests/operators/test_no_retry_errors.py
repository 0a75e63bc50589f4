"""Errors that cannot succeed on a retry (400, 401, 403, 404) end the task without Airflow retries."""

from __future__ import annotations

import pickle

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_phenv.errors import (
    PostHogAuthError,
    PostHogBadRequestError,
    PostHogNotFoundError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
    PostHogWriteOutcomeUnknownError,
)
from airflow_provider_phenv.operators.batch_exports import PostHogPauseBatchExportOperator
from tests.helpers.emulator import api_requests
from tests.helpers.sensor_modes import FakeTI, make_context, sensor_for_mode, utcnow

UNKNOWN_EXPORT = "01900000-0000-7000-8000-00000000dead"
COMMON = {"method": "GET", "path": "/api/environments/1/x/", "detail": "no", "hint": "look here"}


@pytest.mark.parametrize(
    ("error_class", "status", "fails_at_once"),
    [
        (PostHogBadRequestError, 400, True),
        (PostHogAuthError, 401, True),
        (PostHogAuthError, 403, True),
        (PostHogNotFoundError, 404, True),
        (PostHogRateLimitError, 429, False),
        (PostHogServerError, 503, False),
        (PostHogWriteOutcomeUnknownError, 502, False),
    ],
)
def test_which_errors_are_final(error_class, status, fails_at_once):
    error = error_class(status_code=status, **COMMON)
    assert isinstance(error, AirflowFailException) is fails_at_once
    copy = pickle.loads(pickle.dumps(error))  # errors cross process boundaries
    assert type(copy) is error_class and str(copy) == str(error) and copy.hint == "look here"
    assert isinstance(copy, AirflowFailException) is fails_at_once


def test_transport_errors_are_retried():
    error = PostHogTransportError(request_sent=False, **COMMON)
    assert not isinstance(error, AirflowFailException)


def test_a_404_in_an_operator_is_final_with_posthogs_message(emulator, posthog_conn):
    op = PostHogPauseBatchExportOperator(task_id="pause", batch_export_id=UNKNOWN_EXPORT, retries=3)
    with pytest.raises(AirflowFailException) as raised:
        op.execute({})
    assert isinstance(raised.value, PostHogNotFoundError)
    assert "HTTP 404" in str(raised.value) and UNKNOWN_EXPORT in str(raised.value)
    assert len(api_requests(emulator)) == 1  # and the hook did not retry it either


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_soft_fail_does_not_turn_a_refused_request_into_a_skip(emulator, posthog_conn, mode):
    # Airflow skips an AirflowFailException under soft_fail in poke mode; the sensor keeps its rule
    # that soft_fail skips only on timeouts, in every mode.
    from tests.helpers.sensor_modes import MODES

    sensor = sensor_for_mode(mode, soft_fail=True, poke_interval=0.1, batch_export_id=UNKNOWN_EXPORT)
    with pytest.raises(PostHogNotFoundError):
        MODES[mode](sensor, make_context(FakeTI(utcnow())))


def test_never_fail_still_skips_a_refused_request(emulator, posthog_conn):
    from airflow.providers.common.compat.sdk import AirflowSkipException

    from tests.helpers.sensor_modes import MODES

    sensor = sensor_for_mode("poke", never_fail=True, poke_interval=0.1, batch_export_id=UNKNOWN_EXPORT)
    with pytest.raises(AirflowSkipException):
        MODES["poke"](sensor, make_context(FakeTI(utcnow())))
