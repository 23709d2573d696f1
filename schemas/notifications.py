"""Internal and outgoing models: notifications on the lanes, deliveries, receipts, inbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.common import Category, Channel, Lane
from schemas.events import ObjectRef


class Notification(BaseModel):
    """One recipient's notification about one event, travelling on a priority lane."""

    model_config = ConfigDict(frozen=True)

    notification_id: str
    recipient_id: str
    category: Category
    lane: Lane
    event_id: str
    actor_id: str
    actor_name: str | None = None
    object: ObjectRef
    occurred_at: datetime
    created_at: datetime
    expires_at: datetime | None = None
    # Category-specific values the templates use (amount, text, alert kind…), as strings.
    data: dict[str, str] = {}
    # Aggregation: how many events this notification stands for, and the first few actors'
    # display names ("alice and 999,999 others liked your photo").
    count: int = 1
    actors: tuple[str, ...] = ()
    # Where ingest read the event ("topic:partition", offset). Aggregation uses it to tell a
    # replayed copy (ingest reprocessing after a crash) from a new event.
    source_tp: str | None = None
    source_offset: int | None = None


class Target(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: str  # user id (in-app), device token, email, E.164 phone or URL
    platform: Literal["fcm", "apns"] | None = None


class Delivery(BaseModel):
    """A rendered notification for one channel and one target: what a sink sends."""

    model_config = ConfigDict(frozen=True)

    delivery_id: str
    notification_id: str
    recipient_id: str
    category: Category
    lane: Lane
    channel: Channel
    target: Target
    title: str
    body: str
    url: str | None = None
    image_url: str | None = None  # by reference only (see ObjectRef.image_url)
    data: dict[str, str] = {}
    count: int = 1  # events this delivery stands for (aggregation)
    # 0 for the first try; a retry (agents/retry.py) republishes the delivery with attempt+1.
    attempt: int = 0
    occurred_at: datetime
    created_at: datetime
    expires_at: datetime | None = None


class ReceiptStatus(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    THROTTLED = "throttled"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    DEAD_LETTERED = "dead_lettered"
    RETRYING = "retrying"  # a transient failure; the delivery is on the retry topic
    SKIPPED = "skipped"  # already sent (idempotency ledger): a replay or redelivery
    ESCALATED = "escalated"  # unconfirmed: the next channel of the ladder was sent
    # Sent with fallback text because its template failed (reason `template_error`; the
    # worker log has the error). The deliveries' own receipts follow as usual.
    DEGRADED = "degraded"
    SEEN = "seen"
    READ = "read"  # the client opened it: confirmed


class Receipt(BaseModel):
    """The outcome of a delivery (or of a notification that produced none)."""

    model_config = ConfigDict(frozen=True)

    notification_id: str
    recipient_id: str
    lane: Lane | None  # None: not known where the receipt was made (a client's ack)
    status: ReceiptStatus
    at: datetime
    delivery_id: str | None = None
    channel: Channel | None = None
    reason: str | None = None


class InboxItem(BaseModel):
    """What an in-app client sees; `id` doubles as the SSE event id for resuming."""

    model_config = ConfigDict(frozen=True)

    id: str
    seq: int
    notification_id: str
    category: Category
    lane: Lane
    title: str
    body: str
    url: str | None = None
    image_url: str | None = None
    count: int = 1
    created_at: datetime
    seen: bool = False
    read: bool = False
