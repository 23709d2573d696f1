"""Dead-lettered deliveries: the delivery's bytes untouched on `dlq.deliveries`, the reason
and where it came from in headers (the same convention as `dlq.events`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from logic.masking import mask_address
from schemas.notifications import Delivery, ReceiptStatus
from streams import metrics, receipts

if TYPE_CHECKING:
    from streams.context import StageContext

log = logging.getLogger("clarion.dlq")


async def dead_letter(
    ctx: StageContext,
    delivery: Delivery,
    raw: bytes,
    status: ReceiptStatus,
    reason: str,
    detail: str | None,
    provider: str,
    source: tuple[str, int, int] | None = None,
) -> None:
    """DLQ record and receipt, both acknowledged by the broker before this returns."""
    now = datetime.now(UTC)
    headers = {
        "clarion.dlq.reason": reason.encode(),
        "clarion.dlq.detail": (detail or "").encode(),
        "clarion.dlq.channel": delivery.channel.value.encode(),
        "clarion.dlq.provider": provider.encode(),
        "clarion.dlq.attempts": str(delivery.attempt + 1).encode(),
        "clarion.dlq.at": now.isoformat().encode(),
    }
    if source is not None:
        topic, partition, offset = source
        headers |= {
            "clarion.dlq.source.topic": topic.encode(),
            "clarion.dlq.source.partition": str(partition).encode(),
            "clarion.dlq.source.offset": str(offset).encode(),
        }
    log.warning(
        "dead-lettered %s %s to %s: %s (%s)",
        delivery.channel.value,
        delivery.delivery_id,
        mask_address(delivery.target.address),
        reason,
        detail,
    )
    dlq = await ctx.topics.dlq_deliveries.send(
        key=delivery.recipient_id.encode(), value=raw, headers=headers
    )
    receipt = await receipts.record(ctx, delivery, status, reason)
    metrics.dead_lettered(delivery, provider, status.value)
    await dlq
    await receipt
