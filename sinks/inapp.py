"""In-app sink: store each delivery in the user's inbox (so reconnecting clients miss
nothing) and push it to the user's live SSE connections on this worker."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from functools import partial
from typing import TYPE_CHECKING, Any

import faust

from logic.inbox import append_item, contains, next_seq
from schemas.common import Channel, Lane
from schemas.notifications import Delivery, InboxItem, ReceiptStatus
from streams import metrics, receipts
from streams.in_place import delivered_in_place
from tables import changelog, keys, presence

if TYPE_CHECKING:
    from sinks.context import SinkContext
    from streams.clarion_app import ClarionApp


def to_inbox_item(delivery: Delivery, seq: int) -> InboxItem:
    return InboxItem(
        id=delivery.delivery_id,
        seq=seq,
        notification_id=delivery.notification_id,
        category=delivery.category,
        lane=delivery.lane,
        title=delivery.title,
        body=delivery.body,
        url=delivery.url,
        image_url=delivery.image_url,
        count=delivery.count,
        created_at=delivery.created_at,
    )


async def deliver(ctx: SinkContext, delivery: Delivery) -> Awaitable[Any]:
    """Store the delivery in its recipient's inbox and push it to their live connections
    (this worker's SSE streams and the gateways holding one); return the receipt's send
    future. Runs on the event of the recipient's partition: the sink's delivery record, or
    the ingress record when the route delivers in place (streams/in_place.py)."""
    added: list[InboxItem] = []

    def add(items: list[InboxItem] | None) -> list[InboxItem] | None:
        # A redelivered message (crash before the offset commit) is already in the inbox.
        if items is not None and contains(items, delivery.delivery_id):
            return items  # unchanged: nothing written
        item = to_inbox_item(delivery, next_seq(items or []))
        added.append(item)
        return append_item(items or [], item, ctx.settings.inbox_size)

    # Through tables/changelog.py: a Faust table write cost ~250 µs, and its place in Faust's
    # producer buffer (over 100 pending holds back every stream) mattered in a burst.
    await changelog.update(ctx.tables.inbox, keys.user_key(delivery.recipient_id), add)
    live = 0
    if added:
        [item] = added
        live = ctx.hub.publish(delivery.recipient_id, item)
        # Connections held by gateways (`clarion gateway`): read in the same step as
        # the inbox write, so a connect's inbox snapshot or this forward has the item.
        at = presence.record_time(time.time())
        gateways = presence.gateways_of(ctx, delivery.recipient_id, at)
        live += len(await presence.forward(ctx, delivery.recipient_id, [item], gateways))
        metrics.delivered(delivery)
    return await receipts.record(
        ctx, delivery, ReceiptStatus.DELIVERED if live else ReceiptStatus.SENT
    )


def install(app: ClarionApp, ctx: SinkContext) -> None:
    topics = ctx.topics

    async def _deliver_in_app(stream: faust.StreamT[Delivery]) -> None:
        async for event in stream.events():
            if delivered_in_place(event.headers):
                continue  # stored and pushed by the stage that planned it
            await deliver(ctx, event.value)  # type: ignore[arg-type]  # the topic's codec

    for _lane in app.settings.served_lanes:
        app.agent(
            topics.deliveries[(Channel.IN_APP, _lane)],
            name=f"sink.in_app.{_lane.value}",
            concurrency=1,
        )(_deliver_in_app)
    # A critical notification's in-app delivery is made by its route, on the ingress event:
    # the inbox is co-partitioned with it, and the hop through the topic was half of the
    # critical path's latency (docs/architecture.md, "Hops").
    if Lane.CRITICAL in app.settings.served_lanes:
        ctx.in_place.register(Channel.IN_APP, Lane.CRITICAL, partial(deliver, ctx))
