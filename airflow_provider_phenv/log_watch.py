"""
Watching a batch export's log: the decision logic shared by the sensor and its trigger.

Nothing here talks to PostHog. The sensor (sync hook, in a worker) and the trigger (async hook, in
the triggerer) fetch entries their own way and hand them to :meth:`LogWatch.evaluate`, so the same
log timeline gives the same outcome, entry and cursor in poke, reschedule and deferrable mode.

The cursor is the position reached in the log: the timestamp of the newest entry judged so far and
short digests of the entries judged *at* that timestamp. PostHog's ``after`` filter is exclusive and
several entries can share one microsecond (some may become visible a moment later), so the next
poll asks for ``after = cursor.after - 1 µs`` and drops the entries whose digest it already holds.
A poll with no news is then one request answered with the few entries of that last microsecond.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_phenv.hooks._logs import entry_time
from airflow_provider_phenv.validation import (
    check_log_levels,
    check_non_empty_str,
    check_regex,
    format_timestamp,
    parse_timestamp,
)

WAITING = "waiting"
MATCHED = "matched"
FAILED = "failed"
# Messages longer than this are cut in XCom, trigger events and errors: PostHog error lines can
# carry whole tracebacks, and XCom/trigger payloads live in the metadata database.
MAX_MESSAGE_CHARS = 2000
_ONE_MICROSECOND = timedelta(microseconds=1)


def entry_digest(entry: dict[str, Any]) -> str:
    """A short, stable fingerprint of one entry, used to recognise entries already judged."""
    text = "\x1f".join(
        (
            format_timestamp(entry_time(entry)),
            str(entry.get("level") or ""),
            str(entry.get("instance_id") or ""),
            str(entry.get("message") or ""),
        )
    )
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def compact_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """The fields of an entry worth keeping in XCom and events, with a bounded message."""
    message = str(entry.get("message") or "")
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return {
        "timestamp": format_timestamp(entry_time(entry)),
        "level": str(entry.get("level") or "").upper(),
        "message": message,
        "instance_id": entry.get("instance_id") or None,
    }


@dataclass(frozen=True)
class LogCursor:
    """
    How far the log has been read. JSON form: ``{"after": iso, "seen": [digests], "count": n}``.

    :param after: timestamp of the newest entry judged, or the ``since`` bound before any entry.
    :param seen: digests of the entries judged at exactly ``after``. Empty means ``after`` is an
        exclusive bound (nothing stamped ``after`` counts), which is how a fresh cursor at ``since``
        reads.
    :param count: entries judged since ``since``; each entry is counted once.
    """

    after: datetime
    seen: tuple[str, ...] = ()
    count: int = 0

    @classmethod
    def start(cls, since: datetime) -> LogCursor:
        """A cursor that counts only entries strictly after ``since``."""
        return cls(after=since)

    def fetch_after(self) -> datetime:
        """The ``after`` to send: one microsecond early when entries at ``after`` may still come."""
        return self.after - _ONE_MICROSECOND if self.seen else self.after

    def to_json(self) -> dict[str, Any]:
        """Plain values, for XCom, trigger kwargs, events and the task state store."""
        return {"after": format_timestamp(self.after), "seen": list(self.seen), "count": self.count}

    @classmethod
    def from_json(cls, data: Any) -> LogCursor:
        """Rebuild a cursor from :meth:`to_json` output, naming the problem if it is malformed."""
        if not isinstance(data, dict) or "after" not in data:
            raise ValueError(f"Invalid cursor {data!r}: expected a dict with 'after', 'seen' and 'count'.")
        seen = data.get("seen") or []
        count = data.get("count", 0)
        if not isinstance(seen, list) or not all(isinstance(item, str) for item in seen):
            raise ValueError(f"Invalid cursor seen {seen!r}: expected a list of digests.")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"Invalid cursor count {count!r}: expected a non-negative integer.")
        return cls(after=parse_timestamp("cursor after", data["after"]), seen=tuple(seen), count=count)


@dataclass(frozen=True)
class LogOutcome:
    """
    What one batch of entries decided.

    :param status: ``waiting``, ``matched`` or ``failed``.
    :param cursor: the cursor after the entries judged; after a decision it stops at the
        deciding entry, so the same timeline gives the same cursor however it was polled.
    :param entry: the deciding entry (:func:`compact_entry`), or None while waiting.
    :param reason: why a failing entry fails the task.
    :param new: how many entries of this batch were judged for the first time.
    """

    status: str
    cursor: LogCursor
    entry: dict[str, Any] | None = None
    reason: str | None = None
    new: int = 0


@dataclass(frozen=True)
class LogWatch:
    """
    What counts as a match and what counts as a failure, built by :meth:`from_params`.

    An entry that is both a match and a failure fails: a failure is never reported as success.
    """

    levels: tuple[str, ...] | None = None
    message_regex: re.Pattern[str] | None = None
    search: str | None = None
    instance_id: str | None = None
    fail_levels: tuple[str, ...] = ("ERROR",)
    failure_regex: re.Pattern[str] | None = field(default=None)

    @classmethod
    def from_params(
        cls,
        *,
        level: str | Sequence[str] | None = None,
        message_pattern: str | None = None,
        search: str | None = None,
        instance_id: str | None = None,
        failure_pattern: str | None = None,
        fail_on_levels: str | Sequence[str] | None = ("ERROR",),
    ) -> LogWatch:
        """
        Validate the sensor's criteria; every error names the parameter and the bad value.

        :param level: levels an entry must have to match (one, a comma list, or a list).
        :param message_pattern: regular expression searched in the message to match.
        :param search: case-insensitive substring the message must contain to match.
        :param instance_id: only entries of this run count, for matches and failures.
        :param failure_pattern: regular expression; a message containing it fails the task.
        :param fail_on_levels: levels that fail the task; empty to fail on none.
        """
        levels = None if level is None else check_log_levels("level", level)
        fail_levels = () if not fail_on_levels else check_log_levels("fail_on_levels", fail_on_levels)
        overlap = sorted(set(levels or ()) & set(fail_levels))
        if overlap:
            raise ValueError(
                f"Invalid level {level!r}: {', '.join(overlap)} is also in fail_on_levels "
                f"{fail_levels!r}, so such entries would fail the task instead of matching; "
                "pass fail_on_levels=() to wait for them."
            )
        return cls(
            levels=levels,
            message_regex=None
            if message_pattern is None
            else check_regex("message_pattern", message_pattern),
            search=None if search is None else check_non_empty_str("search", search),
            instance_id=None if instance_id is None else check_non_empty_str("instance_id", instance_id),
            fail_levels=fail_levels,
            failure_regex=None
            if failure_pattern is None
            else check_regex("failure_pattern", failure_pattern),
        )

    def to_params(self) -> dict[str, Any]:
        """The criteria as plain values, accepted back by :meth:`from_params`."""
        return {
            "level": None if self.levels is None else list(self.levels),
            "message_pattern": None if self.message_regex is None else self.message_regex.pattern,
            "search": self.search,
            "instance_id": self.instance_id,
            "failure_pattern": None if self.failure_regex is None else self.failure_regex.pattern,
            "fail_on_levels": list(self.fail_levels),
        }

    def fingerprint(self, *scope: Any) -> str:
        """A short digest of the criteria (and ``scope``), to tell whether a saved cursor still applies."""
        text = json.dumps([self.to_params(), *scope], sort_keys=True, default=str)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    # -- what to ask PostHog -------------------------------------------------------------------

    def server_filters(self) -> list[dict[str, Any]]:
        """
        The filters to send to PostHog, one dict per request of a poll.

        Server-side filters shrink responses but must never hide an entry that would fail the
        task: ``search`` alone would hide an ERROR line without the searched word. So:

        * ``instance_id`` scopes everything and is always sent;
        * ``level`` is sent together with the failure levels;
        * with no failure criteria, ``level`` and ``search`` are sent as they are;
        * with ``search`` and failure levels, a poll makes two requests (matches with ``search``,
          failures by level), merged by :func:`merge_streams`;
        * a ``failure_pattern`` can match any entry, so then only ``instance_id`` is sent.
        """
        base: dict[str, Any] = {"instance_id": self.instance_id}
        if not self.fail_levels and self.failure_regex is None:
            plans = [{**base, "level": self.levels, "search": self.search}]
        elif self.failure_regex is not None:
            plans = [base]
        elif self.search is None:
            levels = None if self.levels is None else tuple(dict.fromkeys(self.levels + self.fail_levels))
            plans = [{**base, "level": levels}]
        else:
            plans = [
                {**base, "level": self.levels, "search": self.search},
                {**base, "level": self.fail_levels},
            ]
        return [{key: value for key, value in plan.items() if value is not None} for plan in plans]

    def requests(self, cursor: LogCursor) -> list[dict[str, Any]]:
        """Keyword arguments for ``iter_batch_export_logs``, one dict per request of the next poll."""
        after = cursor.fetch_after()
        return [{"after": after, **filters} for filters in self.server_filters()]

    # -- judging entries -----------------------------------------------------------------------

    def judge(self, entry: dict[str, Any]) -> tuple[str, str | None] | None:
        """``(FAILED, reason)``, ``(MATCHED, None)``, or None when the entry decides nothing."""
        if self.instance_id is not None and (entry.get("instance_id") or None) != self.instance_id:
            return None
        level = str(entry.get("level") or "").upper()
        message = str(entry.get("message") or "")
        if level in self.fail_levels:
            return FAILED, f"level {level} is in fail_on_levels"
        if self.failure_regex is not None and self.failure_regex.search(message):
            return FAILED, f"message matches failure_pattern {self.failure_regex.pattern!r}"
        if self.levels is not None and level not in self.levels:
            return None
        if self.search is not None and self.search.lower() not in message.lower():
            return None
        if self.message_regex is not None and not self.message_regex.search(message):
            return None
        return MATCHED, None

    def evaluate(
        self, entries: Iterable[dict[str, Any]], cursor: LogCursor, since: datetime | None = None
    ) -> LogOutcome:
        """
        Judge the entries not judged before, oldest first; the first deciding entry wins.

        :param entries: entries as PostHog returns them (newest first), possibly overlapping
            entries judged by earlier polls.
        :param cursor: the cursor after the previous poll.
        :param since: entries at or before this moment never count.
        :return: the outcome and the cursor to use next.
        """
        already = Counter(cursor.seen)
        after, seen, count, new = cursor.after, list(cursor.seen), cursor.count, 0
        for entry in chronological(entries):
            moment = entry_time(entry)
            if moment < cursor.after or (since is not None and moment <= since):
                continue
            digest = entry_digest(entry)
            if moment == cursor.after:
                if not cursor.seen:
                    continue  # a fresh cursor: ``after`` is the exclusive ``since`` bound
                if already[digest] > 0:
                    already[digest] -= 1
                    continue
            if moment > after:
                after, seen = moment, [digest]
            else:
                seen.append(digest)
            count += 1
            new += 1
            verdict = self.judge(entry)
            if verdict is not None:
                status, reason = verdict
                return LogOutcome(
                    status, LogCursor(after, tuple(seen), count), compact_entry(entry), reason, new
                )
        return LogOutcome(WAITING, LogCursor(after, tuple(seen), count), new=new)


def chronological(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    Entries oldest first. PostHog sends newest first; entries that share a timestamp keep the
    reverse of PostHog's order (the sort is stable), so they are judged in a repeatable order.
    """
    return sorted(reversed(list(entries)), key=entry_time)


def merge_streams(streams: Iterable[Iterable[dict[str, Any]]]) -> list[dict[str, Any]]:
    """
    Combine the answers of a poll's requests, keeping each entry once.

    An entry can be in two answers (an ERROR line that also contains the searched word). Identical
    entries can also genuinely repeat within one answer, so entries are counted per digest and
    each one is kept as many times as the answer that holds it most often.
    """
    answers = [list(stream) for stream in streams]
    if len(answers) == 1:
        return answers[0]
    merged: list[dict[str, Any]] = []
    kept: Counter[str] = Counter()
    for stream in answers:
        here: Counter[str] = Counter()
        for entry in stream:
            digest = entry_digest(entry)
            here[digest] += 1
            if here[digest] > kept[digest]:
                kept[digest] += 1
                merged.append(entry)
    return merged


def describe_failure(batch_export_id: str, entry: dict[str, Any], reason: str | None) -> str:
    """The error text for a failing entry: the same in every mode, with PostHog's own message."""
    run = f", run {entry['instance_id']}" if entry.get("instance_id") else ""
    why = f" ({reason})" if reason else ""
    return (
        f"Batch export {batch_export_id} logged a failure at {entry['timestamp']}{run}{why}: "
        f"[{entry['level']}] {entry['message']}"
    )
