"""Write the receipt for a delivery's outcome."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from schemas.notifications import Delivery, Receipt, ReceiptStatus
from streams import metrics

if TYPE_CHECKING:
    from streams.topics import Topics


class HasTopics(Protocol):
    """What writing a receipt needs of a stage's context (streams/context.py, a layer up)."""

    @property
    def topics(self) -> Topics: ...


async def record(
    ctx: HasTopics, delivery: Delivery, status: ReceiptStatus, reason: str | None = None
) -> Awaitable[Any]:
    """Send the receipt; the returned future resolves when the broker has it."""
    receipt = Receipt(
        notification_id=delivery.notification_id,
        recipient_id=delivery.recipient_id,
        lane=delivery.lane,
        status=status,
        at=datetime.now(UTC),
        delivery_id=delivery.delivery_id,
        channel=delivery.channel,
        reason=reason,
    )
    metrics.receipt_written(receipt)
    return await ctx.topics.receipts.send(key=delivery.recipient_id.encode(), value=receipt)
