"""Watching a batch export's log, for the logs sensor and its trigger (docs/waits.md, "The log watch")."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_phenv.hooks.calls import entry_time
from airflow_provider_phenv.validation import (
    Check,
    check_filter_names,
    check_log_levels,
    check_non_empty_str,
    check_regex,
    format_timestamp,
    optional,
    parse_timestamp,
)
from airflow_provider_phenv.waits import FAILED, SUCCESS, WAITING

if TYPE_CHECKING:
    from airflow_provider_phenv.hooks.posthog import PostHogAsyncHook, PostHogHook

# PostHog error lines can carry whole tracebacks; XCom and events live in the metadata database.
MAX_MESSAGE_CHARS = 2000
#: How long PostHog may take to reveal a log entry after a newer one (docs/posthog-api.md §6.3).
DEFAULT_LATE_ENTRIES_WINDOW = 300.0


def entry_digest(entry: dict[str, Any]) -> str:
    """A short, stable fingerprint of one entry, used to recognise entries already judged."""
    parts = (str(entry.get(key) or "") for key in ("level", "instance_id", "message"))
    text = "\x1f".join((format_timestamp(entry_time(entry)), *parts))
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
    """How far the log has been judged; JSON ``{"after": iso, "seen": {iso: [digest, ...]}, "count": n}``.

    :param after: the settled mark: entries stamped at or before it are final and never read again.
    :param seen: ``(timestamp, digest)`` of each entry judged after ``after``, oldest first.
    :param count: entries judged since ``since``, each once.
    """

    after: datetime
    seen: tuple[tuple[str, str], ...] = ()
    count: int = 0

    @classmethod
    def start(cls, since: datetime) -> LogCursor:
        """A cursor that counts only entries strictly after ``since``."""
        return cls(after=since)

    def to_json(self) -> dict[str, Any]:
        """Plain values, for XCom, trigger kwargs, events and the task state store."""
        seen: dict[str, list[str]] = {}
        for stamp, digest in self.seen:
            seen.setdefault(stamp, []).append(digest)
        return {"after": format_timestamp(self.after), "seen": seen, "count": self.count}

    @classmethod
    def from_json(cls, data: Any) -> LogCursor:
        """Rebuild a cursor from :meth:`to_json` output, naming the problem if it is malformed."""
        if not isinstance(data, dict) or "after" not in data:
            raise ValueError(f"Invalid cursor {data!r}: expected a dict with 'after', 'seen' and 'count'.")
        seen = data.get("seen") or {}
        count = data.get("count", 0)
        if not isinstance(seen, dict) or not all(
            isinstance(digests, list) and all(isinstance(digest, str) for digest in digests)
            for digests in seen.values()
        ):
            raise ValueError(f"Invalid cursor seen {seen!r}: expected digests by timestamp.")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"Invalid cursor count {count!r}: expected a non-negative integer.")
        pairs = sorted(
            (format_timestamp(parse_timestamp("cursor seen", stamp)), digest)
            for stamp, digests in seen.items()
            for digest in digests
        )
        return cls(after=parse_timestamp("cursor after", data["after"]), seen=tuple(pairs), count=count)


@dataclass(frozen=True)
class LogOutcome:
    """What one batch of entries decided.

    :param status: ``waiting``, ``success`` (an entry matched) or ``failed``.
    :param cursor: the cursor after the entries judged (at the deciding entry after a decision).
    :param entry: the deciding entry (:func:`compact_entry`), or None while waiting.
    :param reason: why a failing entry fails the task.
    :param new: how many entries of this batch were judged for the first time.
    """

    status: str
    cursor: LogCursor
    entry: dict[str, Any] | None = None
    reason: str | None = None
    new: int = 0

    def to_event(self) -> dict[str, Any]:
        """The fields a trigger event adds for a decided outcome: the deciding entry and the reason."""
        return {"entry": self.entry, **({"reason": self.reason} if self.reason else {})}


def check_window(name: str, value: Any) -> float:
    """A late-entries window: seconds (a number or digit string) or a ``timedelta``, at least 0."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    elif isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 86_400:
        raise ValueError(f"Invalid {name} {value!r}: expected seconds from 0 to 86400, or a timedelta.")
    return float(value)


#: The check of each criterion, by the sensor parameter's name (see ``CheckedFields`` in validation).
CRITERIA_CHECKS: dict[str, Check] = {
    "level": optional(check_log_levels),
    "message_pattern": optional(check_regex),
    "search": optional(check_non_empty_str),
    "instance_id": optional(check_non_empty_str),
    "failure_pattern": optional(check_regex),
    "fail_on_levels": lambda name, value: check_log_levels(name, value) if value else (),
    "late_entries_window": check_window,
}


@dataclass(frozen=True)
class LogWatch:
    """What matches and what fails (an entry that does both fails), and how long PostHog may take to reveal
    an entry (``late_entries_window``, seconds): the sensor's parameters, checked by :data:`CRITERIA_CHECKS`.
    """

    level: tuple[str, ...] | None = None
    message_pattern: re.Pattern[str] | None = None
    search: str | None = None
    instance_id: str | None = None
    failure_pattern: re.Pattern[str] | None = None
    fail_on_levels: tuple[str, ...] = ("ERROR",)
    late_entries_window: float = DEFAULT_LATE_ENTRIES_WINDOW

    @classmethod
    def from_params(cls, **params: Any) -> LogWatch:
        """The sensor's criteria, checked; every error names the parameter and the bad value."""
        check_filter_names("log criteria", params, CRITERIA_CHECKS)
        values = {**{field.name: field.default for field in fields(cls)}, **params}
        checked = {name: check(name, values.get(name)) for name, check in CRITERIA_CHECKS.items()}
        return cls.from_checked(checked)

    @classmethod
    def from_checked(cls, values: dict[str, Any]) -> LogWatch:
        """The criteria from values checked by :data:`CRITERIA_CHECKS`; a missing one is not given."""
        levels = values.get("level")
        fail_levels = values.get("fail_on_levels") or ()
        overlap = sorted(set(levels or ()) & set(fail_levels))
        if overlap:
            raise ValueError(
                f"Invalid level {list(levels or ())!r}: {', '.join(overlap)} is also in fail_on_levels "
                f"{fail_levels!r}, so such entries would fail the task instead of matching; "
                "pass fail_on_levels=() to wait for them."
            )
        given = {name: values[name] for name in CRITERIA_CHECKS if values.get(name) is not None}
        return cls(**{**given, "fail_on_levels": fail_levels})

    def to_params(self) -> dict[str, Any]:
        """The criteria as plain values, accepted back by :meth:`from_params`."""

        def plain(value: Any) -> Any:
            if isinstance(value, re.Pattern):
                return value.pattern
            return list(value) if isinstance(value, tuple) else value

        return {name: plain(getattr(self, name)) for name in CRITERIA_CHECKS}

    def fingerprint(self, *scope: Any) -> str:
        """A short digest of the criteria (and ``scope``), to tell whether a saved cursor still applies."""
        text = json.dumps([self.to_params(), *scope], sort_keys=True, default=str)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def server_filters(self) -> list[dict[str, Any]]:
        """The filters to send to PostHog, one dict per request of a poll; never hiding a failing entry."""
        # search alone would hide an ERROR line without the word: with failure levels, a second request
        # reads those; a failure_pattern can match any entry, so only instance_id is sent then.
        base: dict[str, Any] = {"instance_id": self.instance_id}
        matching = {**base, "level": self.level, "search": self.search}
        if not self.fail_on_levels and self.failure_pattern is None:
            plans = [matching]
        elif self.failure_pattern is not None:
            plans = [base]
        elif self.search is None:
            levels = None if self.level is None else tuple(dict.fromkeys(self.level + self.fail_on_levels))
            plans = [{**base, "level": levels}]
        else:
            plans = [matching, {**base, "level": self.fail_on_levels}]
        return [{key: value for key, value in plan.items() if value is not None} for plan in plans]

    def judge(self, entry: dict[str, Any]) -> tuple[str, str | None] | None:
        """``(FAILED, reason)``, ``(SUCCESS, None)``, or None when the entry decides nothing."""
        if self.instance_id is not None and (entry.get("instance_id") or None) != self.instance_id:
            return None
        level = str(entry.get("level") or "").upper()
        message = str(entry.get("message") or "")
        if level in self.fail_on_levels:
            return FAILED, f"level {level} is in fail_on_levels"
        if self.failure_pattern is not None and self.failure_pattern.search(message):
            return FAILED, f"message matches failure_pattern {self.failure_pattern.pattern!r}"
        if self.level is not None and level not in self.level:
            return None
        if self.search is not None and self.search.lower() not in message.lower():
            return None
        if self.message_pattern is not None and not self.message_pattern.search(message):
            return None
        return SUCCESS, None

    def requests(self, cursor: LogCursor) -> list[dict[str, Any]]:
        """Keyword arguments for ``iter_batch_export_logs``, one dict per request of the next poll."""
        return [{"after": cursor.after, **filters} for filters in self.server_filters()]

    def poll(
        self,
        hook: PostHogHook,
        batch_export_id: str,
        project_id: str | None,
        cursor: LogCursor,
        since: datetime | None,
    ) -> LogOutcome:
        """One poll with the sync hook: read the entries after ``cursor`` and judge them."""
        streams = [
            hook.iter_batch_export_logs(batch_export_id, project_id=project_id, **request)
            for request in self.requests(cursor)
        ]
        return self.evaluate(merge_streams(streams), cursor, since)

    async def poll_async(
        self,
        hook: PostHogAsyncHook,
        batch_export_id: str,
        project_id: int | str | None,
        cursor: LogCursor,
        since: datetime | None,
    ) -> LogOutcome:
        """One poll with the async hook: the same requests and judgement as :meth:`poll`."""
        streams = []
        for request in self.requests(cursor):
            entries = hook.iter_batch_export_logs(batch_export_id, project_id=project_id, **request)
            streams.append([entry async for entry in entries])
        return self.evaluate(merge_streams(streams), cursor, since)

    def evaluate(
        self,
        entries: Iterable[dict[str, Any]],
        cursor: LogCursor,
        since: datetime | None = None,
        polled_at: datetime | None = None,
    ) -> LogOutcome:
        """Judge the new entries (newest first, as PostHog sends them) oldest first: the first deciding one
        wins; none at or before ``since`` counts; any a ``late_entries_window`` before ``polled_at`` is final.
        """
        already = Counter(digest for _stamp, digest in cursor.seen)
        seen, count = list(cursor.seen), cursor.count
        # Oldest first; those sharing a timestamp in the reverse of PostHog's order (the sort is stable).
        for entry in sorted(reversed(list(entries)), key=entry_time):
            moment = entry_time(entry)
            if moment <= cursor.after or (since is not None and moment <= since):
                continue
            digest = entry_digest(entry)
            if already[digest] > 0:
                already[digest] -= 1
                continue
            stamp = format_timestamp(moment)
            seen.append((stamp, digest))
            count += 1
            verdict = self.judge(entry)
            if verdict is not None:
                status, reason = verdict
                # The cursor stops at the deciding entry (keeping newer ones already judged).
                decided = LogCursor(moment, tuple(sorted(item for item in seen if item[0] > stamp)), count)
                return LogOutcome(status, decided, compact_entry(entry), reason, count - cursor.count)
        # The settled mark moves up (never back); the digests at or before it are no longer needed.
        window = timedelta(seconds=self.late_entries_window)
        mark = max(cursor.after, (polled_at or datetime.now(timezone.utc)) - window)
        bound = format_timestamp(mark)
        kept = tuple(sorted(item for item in seen if item[0] > bound))
        return LogOutcome(WAITING, LogCursor(mark, kept, count), new=count - cursor.count)


def merge_streams(streams: Iterable[Iterable[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Combine the answers of a poll's requests, keeping each entry as often as one answer holds it."""
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


#: The task state store key of the logs sensor's ``since`` and cursor (docs/waits.md, "The log watch").
STATE_KEY = "posthog_batch_export_logs_watch"


def outcome_from_event(event: dict[str, Any]) -> tuple[datetime, LogOutcome]:
    """The ``since`` and the outcome a trigger event reports; ``ValueError`` names what is missing."""
    try:
        since = parse_timestamp("event since", event["since"])
        cursor = LogCursor.from_json(event["cursor"])
    except KeyError as error:
        raise ValueError(f"no {error.args[0]}") from None
    status = event["status"]
    if status not in (SUCCESS, FAILED):
        return since, LogOutcome(WAITING, cursor)
    entry = event.get("entry")
    if not isinstance(entry, dict) or not {"timestamp", "level", "message"} <= entry.keys():
        raise ValueError("no entry")
    return since, LogOutcome(status, cursor, entry, event.get("reason"))
