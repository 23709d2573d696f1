"""Builders for test input, shared by unit and integration tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

_EXTRA: dict[str, dict[str, Any]] = {
    "comment": {"comment_id": "c1", "text": "Nice!"},
    "mention": {"text": "@alice hi"},
    "message": {"conversation_id": "conv1", "preview": "hey"},
    "payment": {"amount": "12.50", "currency": "EUR", "status": "succeeded"},
    "security_alert": {"alert": "new_login", "location": "Lisbon"},
    "marketing": {"campaign_id": "sale", "title": "Sale", "body": "20% off"},
}


def event_dict(kind: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "type": kind,
        "event_id": uuid.uuid4().hex,
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor_id": "bob",
        "actor_name": "Bob",
        "recipient_id": "alice",
        "object": {"kind": "photo", "id": "p1"},
        **_EXTRA.get(kind, {}),
    }
    if kind == "live_started":
        del event["recipient_id"]
        event |= {"audience": {"kind": "followers", "of": "bob"}, "stream_title": "Hi"}
    event.update(overrides)
    return event


def event_bytes(kind: str, **overrides: Any) -> bytes:
    return json.dumps(event_dict(kind, **overrides)).encode()


def delivery_bytes(
    channel: str,
    recipient: str,
    address: str,
    *,
    lane: str = "high",
    platform: str | None = None,
    notification_id: str | None = None,
    **overrides: Any,
) -> bytes:
    """A rendered delivery, as route puts it on `deliveries.<channel>.<lane>`."""
    from logic.ids import delivery_id
    from schemas.common import Channel

    nid = notification_id or uuid.uuid4().hex
    now = datetime.now(UTC).isoformat()
    value: dict[str, Any] = {
        "delivery_id": delivery_id(nid, Channel(channel), address),
        "notification_id": nid,
        "recipient_id": recipient,
        "category": "message",
        "lane": lane,
        "channel": channel,
        "target": {"address": address, "platform": platform},
        "title": "Bob",
        "body": "hey there",
        "occurred_at": now,
        "created_at": now,
        **overrides,
    }
    return json.dumps(value).encode()
