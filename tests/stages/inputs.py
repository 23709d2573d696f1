"""Lane records as ingest makes them: a domain event (tests/factories.py) validated and
classified by the same functions ingest calls."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from logic import deadletter
from logic.classify import to_notification
from logic.rules import Rules
from logic.validation import decode_event
from schemas.notifications import Notification
from schemas.users import ContactPoints, Preferences
from tests.factories import event_bytes

# Every header a dead letter carries (README, "Dead letters": reason, detail and the source
# position; logic/deadletter.dlq_headers), and a dead-lettered delivery's on top, whether a
# provider sink or provider feedback found it failed (streams/deadletter.delivery).
EVENT_DLQ_HEADERS = frozenset(
    {
        deadletter.REASON,
        deadletter.DETAIL,
        deadletter.SOURCE_TOPIC,
        deadletter.SOURCE_PARTITION,
        deadletter.SOURCE_OFFSET,
        deadletter.AT,
    }
)
DELIVERY_DLQ_HEADERS = EVENT_DLQ_HEADERS | {
    deadletter.CHANNEL,
    deadletter.PROVIDER,
    deadletter.DELIVERY_ID,
    deadletter.ATTEMPTS,
}

# Ingest stamps each notification with its ingress position; windows use it to tell a
# replayed copy from a new event. Every call gets a new offset unless one is given.
_offsets = itertools.count(1000)


def notification(
    rules: Rules,
    kind: str,
    *,
    now: datetime | None = None,
    source_tp: str | None = None,
    source_offset: int | None = None,
    **event: Any,
) -> Notification:
    decoded = decode_event(event_bytes(kind, **event), 1 << 20)
    assert not hasattr(decoded, "reason"), decoded
    if source_tp is None:
        source_tp = f"events.{kind}:0"
    if source_offset is None:
        source_offset = next(_offsets)
    return to_notification(
        decoded,  # type: ignore[arg-type]
        rules,
        now or datetime.now(UTC),
        source_tp=source_tp,
        source_offset=source_offset,
    )


def contacts(uid: str, **points: Any) -> ContactPoints:
    """Push (FCM) and email by default, as tests/integration/test_pipeline.py's users."""
    fields: dict[str, Any] = {
        "user_id": uid,
        "devices": [{"token": f"fcm-{uid}-token", "platform": "fcm"}],
        "email": f"{uid}@example.com",
    }
    return ContactPoints.model_validate(fields | points)


def preferences(uid: str, **prefs: Any) -> Preferences:
    return Preferences.model_validate({"user_id": uid, **prefs})


def consumer_record(
    topic: str,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    *,
    partition: int = 0,
    timestamp_ms: int = 0,
    headers: dict[str, bytes] | None = None,
) -> ConsumerRecord[bytes, bytes]:
    """A record as a topic loader reads it (streams/topic_loader.py)."""
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=timestamp_ms,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=tuple((headers or {}).items()),
    )


def follows_record(
    offset: int, key: bytes, value: bytes | None, *, partition: int = 0, timestamp_ms: int = 0
) -> ConsumerRecord[bytes, bytes]:
    """A record of the `follows` topic as the graph's topic loader reads it."""
    return consumer_record(
        "follows", offset, key, value, partition=partition, timestamp_ms=timestamp_ms
    )
