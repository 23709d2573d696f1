"""In-app sink: store each delivery in the user's inbox (so reconnecting clients miss
nothing) and push it to the user's live SSE connections on this worker."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import faust

from logic.inbox import append_item, contains, next_seq
from schemas.common import Channel
from schemas.notifications import Delivery, InboxItem, ReceiptStatus
from streams import metrics, receipts
from tables import keys, presence

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


def install(app: ClarionApp, ctx: SinkContext) -> None:
    topics, inbox, hub = ctx.topics, ctx.tables.inbox, ctx.hub

    async def _deliver_in_app(stream: faust.StreamT[Delivery]) -> None:
        limit = app.settings.inbox_size
        async for delivery in stream:
            key = keys.user_key(delivery.recipient_id)
            items = inbox.get(key) or []
            live = 0
            # A redelivered message (crash before the offset commit) is already in the inbox.
            if not contains(items, delivery.delivery_id):
                item = to_inbox_item(delivery, next_seq(items))
                inbox[key] = append_item(items, item, limit)
                live = hub.publish(delivery.recipient_id, item)
                # Connections held by gateways (`clarion gateway`): read in the same step as
                # the inbox write, so a connect's inbox snapshot or this forward has the item.
                at = presence.record_time(time.time())
                gateways = presence.gateways_of(ctx, delivery.recipient_id, at)
                live += len(await presence.forward(ctx, delivery.recipient_id, [item], gateways))
                metrics.delivered(delivery)
            await receipts.record(
                ctx, delivery, ReceiptStatus.DELIVERED if live else ReceiptStatus.SENT
            )

    for _lane in app.settings.served_lanes:
        app.agent(
            topics.deliveries[(Channel.IN_APP, _lane)],
            name=f"sink.in_app.{_lane.value}",
            concurrency=1,
        )(_deliver_in_app)
