"""Write the receipt for a delivery's outcome."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from schemas.notifications import Delivery, Receipt, ReceiptStatus
from streams import metrics, topics


async def record(
    delivery: Delivery, status: ReceiptStatus, reason: str | None = None
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
    return await topics.receipts.send(key=delivery.recipient_id.encode(), value=receipt)
