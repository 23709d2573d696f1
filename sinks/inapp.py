"""In-app sink: store each delivery in the user's inbox (so reconnecting clients miss
nothing) and push it to the user's live SSE connections on this worker."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRecord

from logic.inbox import append_item, contains, next_seq
from logic.topic_names import in_app_sink_group
from schemas.common import Channel, Lane
from schemas.notifications import Delivery, InboxItem, ReceiptStatus
from streams import metrics, receipts, sink_records
from streams.in_place import delivered_in_place
from streams.topic_loader import Apply, TopicLoader, started_with_the_app
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


def applier(ctx: SinkContext, lane: Lane) -> Apply:
    """The in-app sink of one lane, as a topic loader's `apply` (streams/topic_loader.py):
    each record of a fetched batch, in order, as the current event of its partition.
    A record marked delivered in place is skipped; one that does not decode, or whose
    delivery fails, is dead-lettered (streams/sink_records.py) and the next goes on."""
    stage = f"sink.in_app.{lane.value}"

    async def apply(partition: int, records: Sequence[ConsumerRecord]) -> list[Awaitable[Any]]:
        # Records marked delivered in place were stored and pushed by the stage that planned
        # them.
        todo = [r for r in records if not delivered_in_place(r.headers)]
        return await sink_records.deliver_each(ctx, stage, todo, partial(deliver, ctx))

    return apply


def install(app: ClarionApp, ctx: SinkContext) -> None:
    """One topic loader per served lane on `deliveries.in_app.<lane>`, on the partitions of
    `inbox` this worker owns (no Faust agent: streams/topic_loader.py says why)."""
    settings = app.settings
    for lane in settings.served_lanes:
        loader = TopicLoader(
            app,
            topics=[ctx.topics.deliveries[(Channel.IN_APP, lane)].get_topic_name()],
            table=ctx.tables.inbox,
            apply=applier(ctx, lane),
            group_id=in_app_sink_group(settings.app_id, lane),
            bootstrap_servers=settings.bootstrap_servers,
        )
        app.service(started_with_the_app(loader))
    # A critical notification's in-app delivery is made by its route, on the ingress event:
    # the inbox is co-partitioned with it, and the hop through the topic was half of the
    # critical path's latency (docs/architecture.md, "Hops").
    if Lane.CRITICAL in settings.served_lanes:
        ctx.in_place.register(Channel.IN_APP, Lane.CRITICAL, partial(deliver, ctx))
