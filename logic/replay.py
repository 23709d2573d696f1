"""Replay and backfill, the pure parts: modes, the replay headers and what the agents read
from them, offset-range resolution, the replay id and checkpoint format, and the dry-run
counts. The Kafka I/O is in streams/replay.py.

A replay re-produces selected records to the topic the pipeline consumes, with headers that
say which mode it runs in and where the record came from:
- a replayed ingress record is processed *as the original message at its original
  position*: dedupe sees the offset it stored the first time (so the record passes, like a
  reprocessing after a crash), the notification carries the original ingress position (so
  an aggregation window that already counted it skips it), and the ids are the same (so the
  ledger and the inbox skip what was already delivered);
- a replayed dead letter is a new message at its new position (it never got past ingest);
- state-only stops at ingest: the dedupe state is written, nothing goes onward.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from logic.classify import to_notification
from logic.rules import Rules
from logic.validation import EventClock, Rejection, decode_event
from schemas.events import LiveStartedEvent

HEADER_MODE = "clarion.replay.mode"
HEADER_SOURCE = "clarion.replay.source"
HEADER_ID = "clarion.replay.id"
_DLQ_PREFIX = "clarion.dlq."
DLQ_SOURCE_TOPIC = "clarion.dlq.source.topic"
DLQ_SOURCE_PARTITION = "clarion.dlq.source.partition"


class Mode(StrEnum):
    DRY_RUN = "dry-run"  # read and count locally; nothing is written to Kafka
    STATE_ONLY = "state-only"  # agents update their tables; nothing is sent onward
    REDELIVER = "redeliver"  # the full pipeline runs; ids + ledger + inbox skip what was sent


class TopicKind(StrEnum):
    INGRESS = "ingress"  # events.*: raw domain events
    DEAD_LETTERS = "dead_letters"  # dlq.events: replayed to the source topic in the headers
    PROFILE = "profile"  # preferences / contacts: compacted, feed tables only


class ReplayError(Exception):
    """A replay that cannot run as asked; the message is the one line the operator sees."""


def check_mode(kind: TopicKind, mode: Mode, topic: str) -> None:
    if kind is TopicKind.DEAD_LETTERS and mode is Mode.STATE_ONLY:
        # Marking a dead letter's event id as seen would make a later redeliver of the same
        # dead letter a "duplicate": state-only has nothing to rebuild from dead letters.
        raise ReplayError(
            f"state-only is not available for {topic}: dead letters never reached a table "
            "(use dry-run or redeliver)"
        )


# -- headers: what the replay writes and what ingest reads -------------------------------


@dataclass(frozen=True)
class Source:
    topic: str
    partition: int
    offset: int

    def encode(self) -> bytes:
        return f"{self.topic}/{self.partition}/{self.offset}".encode()

    @classmethod
    def parse(cls, raw: bytes | str) -> Source | None:
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        parts = text.rsplit("/", 2)
        if len(parts) != 3 or not parts[0]:
            return None
        try:
            return cls(parts[0], int(parts[1]), int(parts[2]))
        except ValueError:
            return None


@dataclass(frozen=True)
class ReplayMarker:
    mode: Mode
    source: Source | None

    @property
    def forwards(self) -> bool:
        """Whether the agent sends anything onward (state-only only updates tables)."""
        return self.mode is not Mode.STATE_ONLY


Headers = Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None


def header_pairs(headers: Headers) -> list[tuple[str, bytes]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return [(k, v) for k, v in headers]


def header_value(headers: Headers, name: str) -> bytes | None:
    for key, value in header_pairs(headers):
        if key == name:
            return value
    return None


def replay_marker(headers: Headers) -> ReplayMarker | None:
    """The replay header of a record, or None for an ordinary record (or a mode an agent
    cannot honour: a dry-run never writes, so a record claiming it is treated as ordinary)."""
    raw = header_value(headers, HEADER_MODE)
    if raw is None:
        return None
    try:
        mode = Mode(raw.decode(errors="replace"))
    except ValueError:
        return None
    if mode is Mode.DRY_RUN:
        return None
    source_raw = header_value(headers, HEADER_SOURCE)
    return ReplayMarker(mode, None if source_raw is None else Source.parse(source_raw))


def ingress_position(
    marker: ReplayMarker | None, topic: str, partition: int, offset: int
) -> tuple[int, int]:
    """(partition, offset) that ingest dedupes and stamps the notification with: the
    original one for a replay of this same topic, else the record's own."""
    if marker is not None and marker.source is not None and marker.source.topic == topic:
        return marker.source.partition, marker.source.offset
    return partition, offset


def replay_headers(
    original: Headers, mode: Mode, source: Source, replay_id: str, *, from_dlq: bool
) -> list[tuple[str, bytes]]:
    """The headers of a re-produced record: the original ones (minus an older replay's, and
    minus the dead-letter ones when it leaves the DLQ) plus this replay's. A record that is
    itself a replayed copy of the same topic keeps pointing at the original message."""
    pairs = header_pairs(original)
    previous = replay_marker(pairs)
    if (
        previous is not None
        and previous.source is not None
        and previous.source.topic == source.topic
    ):
        source = previous.source
    kept = [
        (k, v)
        for k, v in pairs
        if not k.startswith("clarion.replay.") and not (from_dlq and k.startswith(_DLQ_PREFIX))
    ]
    return [
        *kept,
        (HEADER_MODE, mode.value.encode()),
        (HEADER_SOURCE, source.encode()),
        (HEADER_ID, replay_id.encode()),
    ]


def dlq_target(headers: Headers) -> tuple[str, int | None] | None:
    """Where a dead letter came from (topic, partition), or None without the header."""
    topic = header_value(headers, DLQ_SOURCE_TOPIC)
    if not topic:
        return None
    partition = header_value(headers, DLQ_SOURCE_PARTITION)
    try:
        p = None if partition is None else int(partition)
    except ValueError:
        p = None
    return topic.decode(errors="replace"), p


# -- ranges --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeRequest:
    """What the operator asked for; offsets are per partition, `to` is exclusive."""

    from_offset: int | None = None
    to_offset: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.from_offset is not None and self.since is not None:
            raise ReplayError("give --from-offset or --since, not both")
        if self.to_offset is not None and self.until is not None:
            raise ReplayError("give --to-offset or --until, not both")
        if self.since and self.until and self.until <= self.since:
            raise ReplayError("--until must be later than --since")
        if (
            self.from_offset is not None
            and self.to_offset is not None
            and self.to_offset <= self.from_offset
        ):
            raise ReplayError("--to-offset (exclusive) must be greater than --from-offset")


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without a zone is UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ReplayError(f"not an ISO 8601 time: {text!r}") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def resolve_range(
    topic: str,
    partition: int,
    low: int,
    high: int,
    request: RangeRequest,
    since_offset: int | None = None,
    until_offset: int | None = None,
) -> tuple[int, int]:
    """[start, end) for one partition. `low`/`high` are its watermarks; `since_offset` /
    `until_offset` are what the broker's time index gave for --since / --until (None when
    no record is that recent: the range then ends, or starts, at the high watermark)."""
    where = f"{topic}[{partition}]"
    start, end = low, high
    if request.from_offset is not None:
        if not low <= request.from_offset < high:
            raise ReplayError(
                f"--from-offset {request.from_offset} is out of range for {where}: "
                + (f"valid offsets are {low}..{high - 1}" if high > low else "it is empty")
            )
        start = request.from_offset
    elif request.since is not None:
        start = high if since_offset is None else max(since_offset, low)
    if request.to_offset is not None:
        if not low < request.to_offset <= high:
            raise ReplayError(
                f"--to-offset {request.to_offset} is out of range for {where}: "
                + (f"valid ends are {low + 1}..{high} (exclusive)" if high > low else "it is empty")
            )
        end = request.to_offset
    elif request.until is not None:
        end = high if until_offset is None else max(min(until_offset, high), low)
    return start, max(start, end)


# -- replay id and checkpoint -------------------------------------------------------------


def replay_id(
    topic: str, partitions: Iterable[int] | None, request: RangeRequest, mode: Mode
) -> str:
    """Stable for the same command line, so re-running it after Ctrl-C finds its checkpoint."""
    spec = {
        "topic": topic,
        "partitions": sorted(partitions) if partitions else "all",
        "from": request.from_offset,
        "to": request.to_offset,
        "since": request.since.isoformat() if request.since else None,
        "until": request.until.isoformat() if request.until else None,
        "mode": mode.value,
    }
    digest = hashlib.blake2s(json.dumps(spec, sort_keys=True).encode(), digest_size=6)
    return digest.hexdigest()


@dataclass
class Checkpoint:
    """Per partition: the resolved [start, end) and the next offset to replay. The ranges
    are resolved once, on the first run, so a resume never reaches records produced later
    (the replay's own copies among them)."""

    replay_id: str
    topic: str
    mode: Mode
    ranges: dict[int, tuple[int, int]]
    next: dict[int, int] = field(default_factory=dict)
    produced: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    done: bool = False

    def __post_init__(self) -> None:
        for p, (start, _) in self.ranges.items():
            self.next.setdefault(p, start)

    @property
    def total(self) -> int:
        return sum(end - start for start, end in self.ranges.values())

    @property
    def completed(self) -> int:
        return sum(min(self.next[p], end) - start for p, (start, end) in self.ranges.items())

    def remaining(self) -> dict[int, tuple[int, int]]:
        """Partitions with offsets left: next offset to read and the exclusive end."""
        return {p: (self.next[p], end) for p, (_, end) in self.ranges.items() if self.next[p] < end}

    def advance(self, partition: int, next_offset: int) -> None:
        self.next[partition] = max(self.next[partition], next_offset)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "replay_id": self.replay_id,
                "topic": self.topic,
                "mode": self.mode.value,
                "ranges": {str(p): list(r) for p, r in self.ranges.items()},
                "next": {str(p): o for p, o in self.next.items()},
                "produced": self.produced,
                "skipped": dict(self.skipped),
                "done": self.done,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        try:
            data = json.loads(text)
            return cls(
                replay_id=data["replay_id"],
                topic=data["topic"],
                mode=Mode(data["mode"]),
                ranges={int(p): (int(r[0]), int(r[1])) for p, r in data["ranges"].items()},
                next={int(p): int(o) for p, o in data["next"].items()},
                produced=int(data["produced"]),
                skipped=Counter(data.get("skipped", {})),
                done=bool(data["done"]),
            )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ReplayError(f"unreadable replay checkpoint ({exc}); use --restart") from exc


# -- compacted topics ------------------------------------------------------------------------


def superseded(key: bytes | None, offset: int, latest: Mapping[bytes | None, int]) -> bool:
    """A compacted record with a newer one for its key later in the topic: replaying it
    would put an old value back over the newer one, so it is left out."""
    return latest.get(key, offset) > offset


# -- dry-run -------------------------------------------------------------------------------


@dataclass
class DryRunCounts:
    """What a redeliver of the same records would do, as far as the rules alone can tell:
    per-user preferences, contact points, quiet hours, rate limits and aggregation are not
    applied (they live in the worker's tables), so `channels` counts the rules' default
    channels per notification, an upper bound on the deliveries."""

    records: int = 0
    lanes: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)  # "lane/channel"
    invalid: Counter[str] = field(default_factory=Counter)  # reason
    duplicates: int = 0  # event id seen earlier in the same range
    expired: int = 0  # past the category's TTL: route would drop it
    broadcasts: int = 0  # live_started: goes to the fan-out, not a lane
    profiles: Counter[str] = field(default_factory=Counter)  # valid / invalid / tombstone
    skipped: Counter[str] = field(default_factory=Counter)  # superseded, no_source, ...
    _seen: set[str] = field(default_factory=set, repr=False)

    def count_event(
        self,
        raw: bytes | None,
        rules: Rules,
        max_bytes: int,
        now: datetime,
        max_future_skew_s: float | None = None,
    ) -> None:
        self.records += 1
        # With a skew allowance, event time is checked as ingest would check it now.
        clock = None if max_future_skew_s is None else EventClock(now, max_future_skew_s)
        decoded = decode_event(raw, max_bytes, clock)
        if isinstance(decoded, Rejection):
            self.invalid[decoded.reason.value] += 1
            return
        if decoded.event_id in self._seen:
            self.duplicates += 1
            return
        self._seen.add(decoded.event_id)
        if isinstance(decoded, LiveStartedEvent):
            self.broadcasts += 1
            return
        n = to_notification(decoded, rules, now)
        if n.expires_at is not None and n.expires_at <= now:
            self.expired += 1
            return
        self.lanes[n.lane.value] += 1
        for channel in rules.for_category(n.category).channels:
            self.channels[f"{n.lane.value}/{channel.value}"] += 1

    def count_profile(self, key: bytes | None, raw: bytes | None, model: type[BaseModel]) -> None:
        self.records += 1
        if raw is None:
            self.profiles["tombstone"] += 1
            return
        try:
            value: Any = model.model_validate_json(raw)
        except (ValidationError, ValueError):
            self.profiles["invalid"] += 1
            return
        ok = key is not None and getattr(value, "user_id", "").encode() == key
        self.profiles["valid" if ok else "invalid"] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "lanes": dict(sorted(self.lanes.items())),
            "channels": dict(sorted(self.channels.items())),
            "invalid": dict(sorted(self.invalid.items())),
            "duplicates": self.duplicates,
            "expired": self.expired,
            "broadcasts": self.broadcasts,
            "profiles": dict(sorted(self.profiles.items())),
            "skipped": dict(sorted(self.skipped.items())),
        }
