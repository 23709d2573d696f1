"""A delivery record a sink reads through a topic loader (streams/topic_loader.py), with
the guarantees the stage guard gives an agent's records (streams/guard.py): a record that
does not decode, or whose delivery raises, is dead-lettered on dlq.deliveries with the
reason and its original bytes, and the sink goes on with the next."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiokafka import ConsumerRecord
from faust.types import Message
from pydantic import ValidationError

from schemas.notifications import Delivery
from streams.topic_loader import as_current_event, as_message

if TYPE_CHECKING:
    from streams.guard import Guard
    from streams.topics import Topics


class _Context(Protocol):
    """What these need of a sink's context."""

    @property
    def guard(self) -> Guard: ...

    @property
    def topics(self) -> Topics: ...


T = TypeVar("T")


async def decode(ctx: _Context, message: Message) -> Delivery | None:
    """The record's delivery, or None once the record is dead-lettered as undecodable (as a
    Faust agent's topic does: streams/topics.py)."""
    try:
        return Delivery.model_validate_json(message.value or b"")
    except ValidationError as exc:
        await ctx.guard.dead_letter_message(
            ctx.topics.dlq_deliveries,
            message,
            ctx.guard.REASON_UNDECODABLE,
            exc,
            stage=f"decode:{message.topic}",
        )
        return None


async def guarded(ctx: _Context, stage: str, message: Message, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None once the record is dead-lettered because `work` raised (or
    CLARION_FAULT_INJECTION names the stage and the record's key)."""
    result: list[T] = []

    async def run() -> None:
        result.append(await work)

    await ctx.guard.guarded(stage, ctx.topics.dlq_deliveries, message, run())
    if not result and asyncio.iscoroutine(work):
        work.close()  # never started (an injected fault): not reported as un-awaited
    return result[0] if result else None


async def deliver_each(
    ctx: _Context,
    stage: str,
    records: Sequence[ConsumerRecord],
    deliver: Callable[[Delivery], Awaitable[Awaitable[Any]]],
) -> list[Awaitable[Any]]:
    """A sink's step over one fetched batch (streams/topic_loader.Apply): each record in
    order, decoded and `deliver`ed as the current event of its partition, under the guard.
    Returns the receipts' send futures (`deliver`'s results), for the loader to await
    before it commits."""
    receipts_sent: list[Awaitable[Any]] = []
    for record in records:
        message = as_message(record)
        delivery = await decode(ctx, message)
        if delivery is None:
            continue
        with as_current_event(message):
            sent = await guarded(ctx, stage, message, deliver(delivery))
        if sent is not None:
            receipts_sent.append(sent)
    return receipts_sent
