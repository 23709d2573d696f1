"""The one writer of the `receipts` topic. Receipts are built in `logic/receipts.py`; this
sends them keyed by the recipient and counts each one (`metrics.receipt_sent`)."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from logic import receipts
from schemas.notifications import Delivery, Receipt, ReceiptStatus
from streams import metrics, record_batches

if TYPE_CHECKING:
    from streams.topics import Topics


class HasTopics(Protocol):
    """What writing a receipt needs of a stage's context (streams/context.py, a layer up)."""

    @property
    def topics(self) -> Topics: ...


async def send(ctx: HasTopics, receipt: Receipt) -> Awaitable[Any]:
    """Send `receipt`; the returned future resolves when the broker has it."""
    metrics.receipt_sent(receipt)
    # One batch per partition with the turn's other records (streams/record_batches.py).
    return record_batches.send_soon(ctx.topics.receipts, receipt.recipient_id.encode(), receipt)


async def record(
    ctx: HasTopics, delivery: Delivery, status: ReceiptStatus, reason: str | None = None
) -> Awaitable[Any]:
    """Send the receipt of a delivery's outcome, stamped now."""
    return await send(ctx, receipts.for_delivery(delivery, status, datetime.now(UTC), reason))
