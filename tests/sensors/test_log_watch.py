"""The transport-free decision logic shared by the sensor and the trigger."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_phenv.hooks.calls import entry_time
from airflow_provider_phenv.validation import format_timestamp
from airflow_provider_phenv.waits import FAILED, SUCCESS, WAITING
from airflow_provider_phenv.waits.logs import (
    MAX_MESSAGE_CHARS,
    LogCursor,
    LogWatch,
    compact_entry,
    describe_failure,
    entry_digest,
    merge_streams,
)

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


WATCH = LogWatch.from_params(message_pattern=r"finished (successfully )?with (\d+|no) records")


def test_first_deciding_entry_in_time_order_wins():
    failure_first = newest_first(
        at(1, "ERROR", "boom"), at(2, message="finished successfully with 3 records")
    )
    outcome = WATCH.evaluate(failure_first, LogCursor.start(T0))
    assert (outcome.status, outcome.entry["message"], outcome.reason) == (
        FAILED,
        "boom",
        "level ERROR is in fail_on_levels",
    )

    match_first = newest_first(at(1, message="finished successfully with 3 records"), at(2, "ERROR", "boom"))
    outcome = WATCH.evaluate(match_first, LogCursor.start(T0))
    assert (outcome.status, outcome.entry["message"]) == (SUCCESS, "finished successfully with 3 records")
    # The cursor stops at the deciding entry, not at the newest entry fetched.
    assert (outcome.cursor.after, outcome.cursor.seen) == (T0 + timedelta(seconds=1), ())
    assert outcome.cursor.count == 1


def test_entries_at_or_before_since_never_count():
    entries = newest_first(
        at(-5, "ERROR", "old"),
        at(0, "ERROR", "at since"),
        at(0.5, message="finished successfully with 1 records"),
    )
    outcome = WATCH.evaluate(entries, LogCursor.start(T0), since=T0)
    assert outcome.status == SUCCESS
    assert outcome.cursor.count == 1


# Polls in these tests happen "right after" T0: nothing is settled yet unless a test says so.
SOON = T0 + timedelta(seconds=10)


def digests(cursor: LogCursor) -> list[str]:
    return sorted(digest for _stamp, digest in cursor.seen)


def test_equal_timestamps_are_judged_once():
    a, b = at(1, message="a"), at(1, message="b")
    first = WATCH.evaluate(newest_first(a, b), LogCursor.start(T0), polled_at=SOON)
    assert first.status == WAITING
    assert first.cursor.after == T0  # nothing settled yet: the next poll reads from since again
    assert digests(first.cursor) == sorted([entry_digest(a), entry_digest(b)])

    # A third entry stamped the same microsecond becomes visible later: it counts, a and b do not.
    late = at(1, message="finished successfully with 9 records")
    second = WATCH.evaluate([late, b, a], first.cursor, polled_at=SOON)
    assert second.status == SUCCESS
    assert second.new == 1
    assert second.cursor.count == 3


def test_an_older_entry_revealed_after_a_newer_one_is_judged_once():
    newer, older = at(5, message="newer"), at(2, "ERROR", "older, revealed late")
    first = WATCH.evaluate([newer], LogCursor.start(T0), polled_at=SOON)
    assert first.status == WAITING
    second = WATCH.evaluate([newer, older], first.cursor, polled_at=SOON)
    assert (second.status, second.entry["message"], second.new) == (FAILED, "older, revealed late", 1)


def test_the_cursor_settles_behind_the_clock_and_forgets_settled_entries():
    watch = LogWatch.from_params(message_pattern="never", late_entries_window=60)
    first = watch.evaluate([at(1), at(2)], LogCursor.start(T0), polled_at=T0 + timedelta(seconds=30))
    assert (first.cursor.after, len(first.cursor.seen)) == (T0, 2)  # both still in the window
    # 62 s later the entries at 1 s and 2 s are settled: the state holds nothing of them.
    later = T0 + timedelta(seconds=62)
    second = watch.evaluate([at(1), at(2)], first.cursor, polled_at=later)
    assert (second.new, second.cursor.after, second.cursor.seen) == (0, later - timedelta(seconds=60), ())
    assert second.cursor.count == 2
    # An entry older than the settled mark that shows up now is too late: it is not judged.
    assert watch.evaluate([at(1.5, "ERROR", "too late")], second.cursor, polled_at=later).status == WAITING
    assert watch.requests(second.cursor) == [{"after": later - timedelta(seconds=60)}]


def test_an_entry_stamped_in_the_future_hides_nothing_after_it():
    future = at(86_400 * 365, message="clock gone wrong")
    first = WATCH.evaluate([future], LogCursor.start(T0), polled_at=SOON)
    later = T0 + timedelta(hours=1)
    second = WATCH.evaluate([future], first.cursor, polled_at=later)
    assert second.new == 0  # recognised, not judged twice
    third = WATCH.evaluate(
        [future, at(3601, message="finished successfully with 5 records")], second.cursor, polled_at=later
    )
    assert (third.status, third.new) == (SUCCESS, 1)


@pytest.mark.parametrize("seed", range(25))
def test_every_entry_is_judged_exactly_once_whatever_the_visibility_order(seed):
    """Entries become visible in a random order, each within the late-entries window of its stamp."""
    rng = random.Random(seed)
    watch = LogWatch.from_params(message_pattern="never", fail_on_levels=(), late_entries_window=30)
    entries = [at(index * rng.uniform(0.0, 0.5), message=f"line {index}") for index in range(60)]
    entries += [dict(entries[3]), dict(entries[7])]  # identical twins count as often as they occur
    reveal = {id(entry): entry_time(entry) + timedelta(seconds=rng.uniform(0, 20)) for entry in entries}
    judged: list[dict] = []
    real_judge = watch.judge
    object.__setattr__(watch, "judge", lambda entry: judged.append(entry) or real_judge(entry))

    cursor, clock = LogCursor.start(T0 - timedelta(seconds=1)), T0
    while clock < T0 + timedelta(seconds=90):
        visible = [
            entry for entry in entries if reveal[id(entry)] <= clock and entry_time(entry) > cursor.after
        ]
        outcome = watch.evaluate(newest_first(*visible), cursor, polled_at=clock)
        cursor = outcome.cursor
        clock += timedelta(seconds=rng.uniform(0.5, 4))

    assert sorted(entry["message"] for entry in judged) == sorted(entry["message"] for entry in entries)
    assert cursor.count == len(entries)
    assert cursor.seen == ()  # all settled: the state is back to its minimum


def test_identical_entries_are_counted_as_often_as_they_occur():
    twin = at(1, message="same line")
    first = WATCH.evaluate([twin], LogCursor.start(T0), polled_at=SOON)
    second = WATCH.evaluate([twin, dict(twin), at(2)], first.cursor, polled_at=SOON)
    assert second.new == 2  # the second twin and the entry at 2 s
    assert second.cursor.count == 3


def test_no_news_changes_nothing():
    first = WATCH.evaluate([at(1)], LogCursor.start(T0), polled_at=SOON)
    again = WATCH.evaluate([at(1)], first.cursor, polled_at=SOON)
    assert again.status == WAITING
    assert again.new == 0
    assert again.cursor == first.cursor


def test_fresh_cursor_treats_after_as_exclusive():
    cursor = LogCursor.start(T0)
    assert WATCH.requests(cursor) == [{"after": T0}]
    assert WATCH.evaluate([at(0, "ERROR", "exactly at since")], cursor).status == WAITING


def test_cursor_json_round_trip_and_errors():
    stamp = format_timestamp(T0 + timedelta(seconds=1))
    cursor = LogCursor(T0, ((stamp, "abc"), (stamp, "abd")), 4)
    assert LogCursor.from_json(cursor.to_json()) == cursor
    assert cursor.to_json() == {
        "after": "2026-01-31T12:00:00.000000Z",
        "seen": {stamp: ["abc", "abd"]},
        "count": 4,
    }
    for bad in (
        None,
        {"seen": {}},
        {"after": "nope"},
        {"after": "2026-01-31T12:00:00Z", "count": -1},
        {"after": "2026-01-31T12:00:00Z", "seen": ["abc"]},
        {"after": "2026-01-31T12:00:00Z", "seen": {"yesterday": ["abc"]}},
    ):
        with pytest.raises(ValueError, match="Invalid"):
            LogCursor.from_json(bad)


def test_failure_pattern_levels_search_and_instance():
    watch = LogWatch.from_params(
        level=["info", "WARNING"],
        search="FINISHED",
        instance_id="run-2",
        failure_pattern="non-recoverable",
        fail_on_levels=(),
    )
    assert watch.judge(at(1, "INFO", "export finished", "run-1")) is None  # another run
    assert watch.judge(at(1, "DEBUG", "export finished", "run-2")) is None  # level
    assert watch.judge(at(1, "WARNING", "export done", "run-2")) is None  # search
    assert watch.judge(at(1, "WARNING", "export Finished", "run-2")) == (SUCCESS, None)
    assert watch.judge(at(1, "ERROR", "oops", "run-2")) is None  # fail_on_levels=()
    verdict = watch.judge(at(1, "INFO", "failed with a non-recoverable error", "run-2"))
    assert verdict == (FAILED, "message matches failure_pattern 'non-recoverable'")


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


def test_requests_carry_the_settled_mark():
    cursor = LogCursor(T0, ((format_timestamp(T0 + timedelta(seconds=1)), "x"),), 1)
    assert LogWatch.from_params(level="INFO").requests(cursor) == [{"after": T0, "level": ("INFO", "ERROR")}]


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
