"""Sending a dead letter so that the record it stands for is never lost.

The source record is held (one extra reference on its message, so the stream's ack does not
make its offset committable) until the broker has acknowledged the dead letter. A failing
send is retried with backoff and the stage waits: a record that cannot be dead-lettered
stops its partition, it is never skipped. If the worker stops meanwhile, the offset stays
uncommitted and the record is read again on restart. A dead letter the broker refuses as too
large is sent again as a truncated copy that says so (logic/deadletter.py).

Every dead letter is written by one of two functions here, with the headers of
logic/deadletter.py: `record` for ingress records and records a stage could not process
(dlq.events; an undecodable delivery record goes to dlq.deliveries the same way), and
`delivery` for a delivery that failed for good, from a provider sink or from provider
feedback after the send: the same headers, its receipt, and the same metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import faust
from aiokafka.errors import MessageSizeTooLargeError
from faust.types import Message

from logic import deadletter
from schemas.notifications import Receipt
from streams import metrics, receipts

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger("clarion.deadletter")
_BACKOFF_FIRST_S = 0.5
_BACKOFF_CAP_S = 30.0


def _too_large(exc: BaseException) -> bool:
    """The producer (before sending) or the broker refused the record's size. Faust wraps
    the client's error in ProducerSendError."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MessageSizeTooLargeError) or "MessageSizeTooLarge" in repr(seen):
            return True
        seen = seen.__cause__
    return False


async def send(
    topic: faust.TopicT,
    message: Message,
    key: bytes | None,
    value: bytes | None,
    headers: Mapping[str, bytes],
    *,
    budget: int,
) -> None:
    """Dead-letter (key, value, headers) for `message` and return once the broker has it;
    `budget` is the most bytes it may take (settings.dead_letter_max_bytes)."""
    message.incref()  # hold the source offset until the dead letter is acknowledged
    delay = _BACKOFF_FIRST_S
    while True:
        fitted, out = deadletter.fit(key, value, headers, budget)
        try:
            sent = await topic.send(key=key, value=fitted, headers=out)
            await sent  # the broker's acknowledgement, or its error
        except asyncio.CancelledError:
            raise  # stopping: the held message keeps its offset uncommitted
        except Exception as exc:
            size = deadletter.record_size(key, fitted, out)
            if _too_large(exc) and budget > deadletter.MIN_BUDGET:
                budget = deadletter.smaller_budget(budget, size)
                log.error(
                    "dead letter of %s[%d]@%d refused as too large (%d bytes): sending a "
                    "truncated copy of at most %d bytes",
                    message.topic, message.partition, message.offset, size, budget,
                )  # fmt: skip
                continue
            log.error(
                "dead letter of %s[%d]@%d not sent (%r); the partition waits, retry in %.1f s",
                message.topic, message.partition, message.offset, exc, delay,
            )  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_CAP_S)
            continue
        message.decref()
        if out.get(deadletter.TRUNCATED):
            log.error(
                "dead-lettered a truncated copy of %s[%d]@%d (%s of %s bytes)",
                message.topic, message.partition, message.offset,
                len(fitted or b""), out[deadletter.ORIGINAL_BYTES].decode(),
            )  # fmt: skip
        return


async def record(
    dlq: faust.TopicT,
    message: Message,
    reason: str,
    detail: str,
    *,
    budget: int,
    now: datetime | None = None,
    **extra: str,
) -> None:
    """Dead-letter a record that is not a delivery (rejected ingress, a stage error, an
    undecodable record): its key and bytes untouched on `dlq`, with the reason, detail,
    where it was read and `extra` (e.g. stage) in headers, counted in
    clarion_events_dead_lettered_total by reason. Returns once the broker has it."""
    source = (message.topic, message.partition, message.offset)
    headers = deadletter.dlq_headers(reason, detail, source, now or datetime.now(UTC), **extra)
    await send(dlq, message, message.key, message.value, headers, budget=budget)
    metrics.events_dead_lettered.labels(reason).inc()


class HasTopicsAndSettings(receipts.HasTopics, Protocol):
    """What dead-lettering a delivery needs of a stage's context (a layer up)."""

    @property
    def settings(self) -> Settings: ...


async def delivery(
    ctx: HasTopicsAndSettings,
    message: Message,
    receipt: Receipt,
    *,
    detail: str,
    provider: str,
    attempts: int | None,
) -> None:
    """Dead-letter a delivery that failed for good: `message` (the record that says so: the
    delivery itself, or the provider's feedback about it) byte for byte on dlq.deliveries,
    keyed by the recipient, with `receipt`'s reason and channel and where `message` was
    read in headers; then its `receipt`; and count it (clarion_deliveries_dead_lettered;
    the receipt counts in clarion_delivery_outcomes). Returns once the broker has both."""
    assert receipt.channel is not None and receipt.delivery_id is not None, receipt
    headers = deadletter.delivery_dlq_headers(
        receipt.reason or "",
        detail,
        (message.topic, message.partition, message.offset),
        datetime.now(UTC),
        channel=receipt.channel.value,
        provider=provider,
        delivery_id=receipt.delivery_id,
        attempts=attempts,
    )
    key = receipt.recipient_id.encode()
    budget = ctx.settings.dead_letter_max_bytes
    await send(ctx.topics.dlq_deliveries, message, key, message.value, headers, budget=budget)
    await (await receipts.send(ctx, receipt))
    metrics.delivery_dead_lettered(receipt, provider)
