"""Deliveries and timeouts for the sender tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.common import Category, Channel, Lane
from schemas.notifications import Delivery, Target

# Short enough to keep timeout tests fast, long enough for a first TLS handshake or token
# fetch on a loaded machine.
SEND_TIMEOUT_S = 3.0
HANG_TIMEOUT_S = 0.5


def delivery(
    channel: Channel | str,
    address: str,
    platform: str | None = None,
    **overrides: Any,
) -> Delivery:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "delivery_id": "dlv-1",
        "notification_id": "ntf-1",
        "recipient_id": "usr-1",
        "category": Category.COMMENT,
        "lane": Lane.HIGH,
        "channel": Channel(channel),
        "target": Target(address=address, platform=platform),  # type: ignore[arg-type]
        "title": "Ada commented",
        "body": "Nice <b>photo</b> & view",
        "url": "https://clarion.example/p/42",
        "image_url": "https://cdn.example/p/42.jpg",
        "data": {"post_id": "42"},
        "occurred_at": now,
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
    }
    return Delivery(**{**fields, **overrides})
