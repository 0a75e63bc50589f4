"""The transport-free decision logic shared by the sensor and the trigger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_phenv.log_watch import (
    MAX_MESSAGE_CHARS,
    LogCursor,
    LogWatch,
    compact_entry,
    describe_failure,
    entry_digest,
    merge_streams,
)
from airflow_provider_phenv.validation import format_timestamp
from airflow_provider_phenv.waits import FAILED, SUCCESS, WAITING

T0 = datetime(2026, 1, 31, 12, 0, tzinfo=timezone.utc)


def at(seconds: float, level: str = "INFO", message: str = "working", instance_id: str = "run-1") -> dict:
    return {
        "timestamp": format_timestamp(T0 + timedelta(seconds=seconds)),
        "level": level,
        "message": message,
        "instance_id": instance_id,
    }


def newest_first(*entries: dict) -> list[dict]:
    return sorted(entries, key=lambda entry: entry["timestamp"], reverse=True)


WATCH = LogWatch.from_params(message_pattern=r"finished with \d+ records")


def test_first_deciding_entry_in_time_order_wins():
    failure_first = newest_first(at(1, "ERROR", "boom"), at(2, message="finished with 3 records"))
    outcome = WATCH.evaluate(failure_first, LogCursor.start(T0))
    assert (outcome.status, outcome.entry["message"], outcome.reason) == (
        FAILED,
        "boom",
        "level ERROR is in fail_on_levels",
    )

    match_first = newest_first(at(1, message="finished with 3 records"), at(2, "ERROR", "boom"))
    outcome = WATCH.evaluate(match_first, LogCursor.start(T0))
    assert (outcome.status, outcome.entry["message"]) == (SUCCESS, "finished with 3 records")
    # The cursor stops at the deciding entry, not at the newest entry fetched.
    assert outcome.cursor.after == T0 + timedelta(seconds=1)
    assert outcome.cursor.count == 1


def test_entries_at_or_before_since_never_count():
    entries = newest_first(
        at(-5, "ERROR", "old"), at(0, "ERROR", "at since"), at(0.5, message="finished with 1 records")
    )
    outcome = WATCH.evaluate(entries, LogCursor.start(T0), since=T0)
    assert outcome.status == SUCCESS
    assert outcome.cursor.count == 1


def test_equal_timestamps_at_the_cursor_are_judged_once():
    a, b = at(1, message="a"), at(1, message="b")
    first = WATCH.evaluate(newest_first(a, b), LogCursor.start(T0))
    assert first.status == WAITING
    assert first.cursor.after == T0 + timedelta(seconds=1)
    assert sorted(first.cursor.seen) == sorted([entry_digest(a), entry_digest(b)])
    assert first.cursor.fetch_after() == T0 + timedelta(seconds=1) - timedelta(microseconds=1)

    # A third entry stamped the same microsecond becomes visible later: it counts, a and b do not.
    late = at(1, message="finished with 9 records")
    second = WATCH.evaluate([late, b, a], first.cursor)
    assert second.status == SUCCESS
    assert second.new == 1
    assert second.cursor.count == 3
    assert len(second.cursor.seen) == 3


def test_identical_entries_are_counted_as_often_as_they_occur():
    twin = at(1, message="same line")
    first = WATCH.evaluate([twin], LogCursor.start(T0))
    second = WATCH.evaluate([twin, dict(twin), at(2)], first.cursor)
    assert second.new == 2  # the second twin and the entry at 2 s
    assert second.cursor.count == 3


def test_no_news_changes_nothing():
    first = WATCH.evaluate([at(1)], LogCursor.start(T0))
    again = WATCH.evaluate([at(1)], first.cursor)
    assert again.status == WAITING
    assert again.new == 0
    assert again.cursor == first.cursor


def test_fresh_cursor_treats_after_as_exclusive():
    cursor = LogCursor.start(T0)
    assert cursor.fetch_after() == T0
    assert WATCH.evaluate([at(0, "ERROR", "exactly at since")], cursor).status == WAITING


def test_cursor_json_round_trip_and_errors():
    cursor = LogCursor(T0, ("abc",), 4)
    assert LogCursor.from_json(cursor.to_json()) == cursor
    assert cursor.to_json() == {"after": "2026-01-31T12:00:00.000000Z", "seen": ["abc"], "count": 4}
    for bad in (None, {"seen": []}, {"after": "nope"}, {"after": "2026-01-31T12:00:00Z", "count": -1}):
        with pytest.raises(ValueError, match="Invalid"):
            LogCursor.from_json(bad)


def test_failure_pattern_levels_search_and_instance():
    watch = LogWatch.from_params(
        level=["info", "WARNING"],
        search="FINISHED",
        instance_id="run-2",
        failure_pattern="non-retryable",
        fail_on_levels=(),
    )
    assert watch.judge(at(1, "INFO", "export finished", "run-1")) is None  # another run
    assert watch.judge(at(1, "DEBUG", "export finished", "run-2")) is None  # level
    assert watch.judge(at(1, "WARNING", "export done", "run-2")) is None  # search
    assert watch.judge(at(1, "WARNING", "export Finished", "run-2")) == (SUCCESS, None)
    assert watch.judge(at(1, "ERROR", "oops", "run-2")) is None  # fail_on_levels=()
    verdict = watch.judge(at(1, "INFO", "failed with non-retryable error", "run-2"))
    assert verdict == (FAILED, "message matches failure_pattern 'non-retryable'")


def test_an_entry_that_matches_and_fails_fails():
    watch = LogWatch.from_params(message_pattern="finished")
    assert watch.judge(at(1, "ERROR", "finished with errors"))[0] == FAILED


@pytest.mark.parametrize(
    ("params", "filters"),
    [
        ({}, [{}]),
        ({"level": "INFO"}, [{"level": ("INFO", "ERROR")}]),
        ({"level": "INFO", "fail_on_levels": ()}, [{"level": ("INFO",)}]),
        ({"search": "finished", "fail_on_levels": ()}, [{"search": "finished"}]),
        # search alone would hide an ERROR line without the word: a second request finds failures.
        (
            {"search": "finished", "instance_id": "r"},
            [{"instance_id": "r", "search": "finished"}, {"instance_id": "r", "level": ("ERROR",)}],
        ),
        ({"search": "finished", "failure_pattern": "boom", "level": "INFO"}, [{}]),
    ],
)
def test_server_filters_never_hide_a_failure(params, filters):
    assert LogWatch.from_params(**params).server_filters() == filters


def test_requests_carry_the_cursor():
    cursor = LogCursor(T0, ("x",), 1)
    assert LogWatch.from_params(level="INFO").requests(cursor) == [
        {"after": T0 - timedelta(microseconds=1), "level": ("INFO", "ERROR")}
    ]


def test_merge_streams_keeps_each_entry_once():
    error = at(2, "ERROR", "finished badly")
    twin = at(1, message="finished")
    merged = merge_streams([[error, twin, dict(twin)], [error]])
    assert merged == [error, twin, twin]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"level": "LOUD"}, "Invalid level 'LOUD'"),
        ({"fail_on_levels": ["ERROR", "FATAL"]}, "Invalid fail_on_levels 'FATAL'"),
        ({"message_pattern": "("}, "Invalid message_pattern '\\('"),
        ({"failure_pattern": "[x"}, "Invalid failure_pattern"),
        ({"search": " "}, "Invalid search"),
        ({"instance_id": ""}, "Invalid instance_id"),
        ({"level": "ERROR"}, "is also in fail_on_levels"),
    ],
)
def test_invalid_criteria_name_the_parameter(params, message):
    with pytest.raises(ValueError, match=message):
        LogWatch.from_params(**params)


def test_params_round_trip():
    watch = LogWatch.from_params(level="info", message_pattern="a+", search="s", failure_pattern="f")
    assert LogWatch.from_params(**watch.to_params()) == watch
    assert watch.fingerprint("x") == LogWatch.from_params(**watch.to_params()).fingerprint("x")
    assert watch.fingerprint("x") != watch.fingerprint("y")


def test_long_messages_are_cut_and_the_failure_text_quotes_posthog():
    entry = compact_entry(at(1, "ERROR", "x" * 5000))
    assert len(entry["message"]) == MAX_MESSAGE_CHARS
    text = describe_failure(
        "e1", compact_entry(at(1, "ERROR", "Batch export failed")), "level ERROR is in fail_on_levels"
    )
    assert text == (
        "Batch export e1 logged a failure at 2026-01-31T12:00:01.000000Z, run run-1 "
        "(level ERROR is in fail_on_levels): [ERROR] Batch export failed"
    )
