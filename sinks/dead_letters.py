"""Dead-lettered deliveries of the provider sinks: the delivery's bytes untouched on
`dlq.deliveries` with its `failed` / `dead_lettered` receipt, through the one writer that
provider feedback uses too (streams/deadletter.delivery: same headers, same metrics)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from faust.types import Message

from logic.masking import mask_address
from logic.receipts import for_delivery
from schemas.notifications import Delivery, ReceiptStatus
from streams import deadletter

if TYPE_CHECKING:
    from streams.context import StageContext

log = logging.getLogger("clarion.dlq")


async def dead_letter(
    ctx: StageContext,
    delivery: Delivery,
    message: Message,
    status: ReceiptStatus,
    reason: str,
    detail: str | None,
    provider: str,
) -> None:
    """DLQ record (the bytes of `message`, the delivery record read) and receipt, both
    acknowledged by the broker before this returns. `delivery` is the try that failed last
    (its attempt may be past the record's, for a channel retried in place)."""
    log.warning(
        "dead-lettered %s %s to %s: %s (%s)",
        delivery.channel.value,
        delivery.delivery_id,
        mask_address(delivery.target.address),
        reason,
        detail,
    )
    await deadletter.delivery(
        ctx,
        message,
        for_delivery(delivery, status, datetime.now(UTC), reason),
        detail=detail or "",
        provider=provider,
        attempts=delivery.attempt + 1,
    )
