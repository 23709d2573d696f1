"""route: per lane, look up the recipient's preferences and contacts (co-partitioned tables)
and decide: deliver now (critical; high unless held), gather into an aggregation window
(social, bulk, anything held by quiet hours), or drop (expired, digest off, shed).

`route_one` is called by ingest for the notifications of lanes its group serves (no lane
hop), and by the route agents for the records that do come through a lane topic."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import faust
from faust.types import TP, Message

from agents import digest, emit
from logic.lanes import Route, decide
from logic.windows import window_time
from schemas.common import Lane
from schemas.notifications import Notification, ReceiptStatus

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext


async def route_one(ctx: StageContext, lane: Lane, n: Notification, message: Message) -> None:
    """Route one notification of `lane`: deliver now, gather into a window, or drop.

    `message` is the record it came in on, on the recipient's partition: a lane record (the
    route agents), or the ingress record itself when ingest routes in place (agents/ingest.py).
    Its partition is the tables' partition, its timestamp places the notification in time."""
    _settings = ctx.settings
    now = time.time()
    ctx.windows.ensure_current()
    ts = window_time(n.occurred_at.timestamp(), message.timestamp)
    ctx.windows.observe(lane, message.tp, message.offset, ts)
    if n.expires_at is not None and now >= n.expires_at.timestamp():
        await emit.drop(ctx, n, ReceiptStatus.EXPIRED, "ttl_elapsed", now)
        return
    # Bulk is what goes first when the pipeline is behind.
    if lane is Lane.BULK and _backlog(ctx, message) > _settings.bulk_shed_lag:
        await emit.drop(ctx, n, ReceiptStatus.THROTTLED, "shed_under_pressure", now)
        return
    prefs = emit.preferences(ctx, n.recipient_id)
    rule = ctx.rules.for_category(n.category)
    decision = decide(n, rule, prefs, datetime.fromtimestamp(now, UTC))
    match decision.route:
        case Route.SUPPRESS:
            await emit.drop(ctx, n, ReceiptStatus.SUPPRESSED, decision.reason or "", now)
        case Route.DIGEST:
            assert decision.window_s is not None
            await digest.gather(ctx, n, decision.window_s, decision.hold_until, message, ts)
        case Route.DELIVER:
            contact = emit.contacts(ctx, n.recipient_id)
            plan = emit.plan(ctx, n, prefs, contact, now)
            await emit.emit(ctx, plan, n, prefs, now, limited=lane is not Lane.CRITICAL)


def _backlog(ctx: StageContext, message: Message) -> int:
    """Records behind this one in its partition (the bulk lane sheds above a threshold)."""
    # The lane topic's (Faust's consumer) or an ingress topic's (ingest's topic loader).
    highwater = ctx.positions.highwater(TP(message.topic, message.partition))
    return 0 if highwater is None else highwater - message.offset - 1


def install(app: ClarionApp, ctx: StageContext) -> None:
    topics, guard = ctx.topics, ctx.guard

    def _make_route(lane: Lane) -> None:
        stage = f"route.{lane.value}"

        async def route(stream: faust.StreamT[Notification]) -> None:
            async for event in stream.events():
                n: Notification = event.value  # type: ignore[assignment]  # the lane codec's type
                await guard.guarded(
                    stage, topics.dlq_events, event.message, route_one(ctx, lane, n, event.message)
                )

        # concurrency=1: writes the digests and buckets tables.
        app.agent(topics.lanes[lane], name=stage, concurrency=1)(route)

    # Lane records come from groups that do not serve the lane, from the fan-out stage and
    # from replays; ingest routes what it can in place (agents/ingest.py).
    for _lane in ctx.settings.served_lanes:
        _make_route(_lane)
