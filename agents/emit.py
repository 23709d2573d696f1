"""Turn a routed notification into deliveries: rate limits, then the delivery topics.

Shared by `route` (notifications delivered at once) and `digest` (flushed windows).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from logic.buckets import BucketLimit, BucketState
from logic.escalation import split_for_escalation
from logic.presence import prefer_in_app
from logic.receipts import for_notification
from logic.routing import RoutePlan, plan_deliveries
from logic.throttle import Throttle, limit_for, take_tokens, wait_needed
from schemas.common import Channel, Lane
from schemas.control import EscalationStep
from schemas.notifications import Delivery, Notification, ReceiptStatus
from schemas.users import ContactPoints, Preferences
from streams import metrics, receipts, record_batches
from streams.in_place import IN_PLACE_HEADERS
from tables import changelog, keys, presence
from tables.rows import BucketRow

if TYPE_CHECKING:
    from streams.context import StageContext


def profile(
    ctx: StageContext, recipient_id: str
) -> tuple[Preferences | None, ContactPoints | None]:
    """The recipient's tables, read from the partition being processed (co-partitioned)."""
    return preferences(ctx, recipient_id), contacts(ctx, recipient_id)


def preferences(ctx: StageContext, recipient_id: str) -> Preferences | None:
    value: Preferences | None = changelog.get(ctx.tables.preferences, keys.user_key(recipient_id))
    return value


def contacts(ctx: StageContext, recipient_id: str) -> ContactPoints | None:
    """Read only for what is delivered now: a notification folded into a window needs none."""
    value: ContactPoints | None = changelog.get(ctx.tables.contacts, keys.user_key(recipient_id))
    return value


def plan(
    ctx: StageContext,
    n: Notification,
    prefs: Preferences | None,
    contact: ContactPoints | None,
    now: float,
) -> RoutePlan:
    rules, renderer = ctx.rules, ctx.renderer
    p = plan_deliveries(n, prefs, contact, rules, renderer, datetime.fromtimestamp(now, UTC))
    # Hybrid push/pull: connected to a gateway → in-app now, no push (logic/presence.py).
    online = bool(presence.gateways_of(ctx, n.recipient_id, presence.record_time(now)))
    required = rules.for_category(n.category).required
    return prefer_in_app(p, online=online, lane=n.lane, required=required)


def _buckets(
    ctx: StageContext, p: RoutePlan, n: Notification, prefs: Preferences | None
) -> tuple[set[Channel], dict[Channel, BucketLimit | None], dict[Channel, BucketState | None]]:
    """The plan's channels, their limits, and the bucket state of each limited one."""
    rules, buckets = ctx.rules, ctx.tables.buckets
    channels = {d.channel for d in p.deliveries}
    limits = {ch: limit_for(rules, n.category, ch, prefs) for ch in channels}
    states = {
        ch: _state(buckets.get(keys.bucket_key(n.recipient_id, ch)))
        for ch, limit in limits.items()
        if limit is not None
    }
    return channels, limits, states


def _state(row: BucketRow | None) -> BucketState | None:
    return None if row is None else row.state()


def seconds_until_tokens(
    ctx: StageContext, p: RoutePlan, n: Notification, prefs: Preferences | None, now: float
) -> float:
    return wait_needed(*_buckets(ctx, p, n, prefs), now)


def _take(
    ctx: StageContext, p: RoutePlan, n: Notification, prefs: Preferences | None, now: float
) -> Throttle:
    buckets = ctx.tables.buckets
    result = take_tokens(*_buckets(ctx, p, n, prefs), now)
    for ch, state in result.updates.items():
        # Not `buckets[key] = row`: Faust's table write costs about 250 µs and queues in its
        # producer buffer, which a topic loader's ingest does not wait for (tables/changelog.py).
        changelog.put_now(buckets, keys.bucket_key(n.recipient_id, ch), BucketRow.of(state))
    return result


async def emit(
    ctx: StageContext,
    p: RoutePlan,
    n: Notification,
    prefs: Preferences | None,
    now: float,
    *,
    limited: bool,
) -> list[Awaitable[Any]]:
    """Send the plan's deliveries (one token per limited channel when `limited`) and its
    receipts; return the send futures so a caller can wait until the broker has them."""
    rules, topics = ctx.rules, ctx.topics
    key = n.recipient_id.encode()
    futures: list[Awaitable[Any]] = []
    throttled: frozenset[Channel] = frozenset()
    if limited and p.deliveries:
        throttled = _take(ctx, p, n, prefs, now).throttled
    deliveries: list[Delivery] = list(p.deliveries)
    later: list[list[Delivery]] = []
    rule = rules.for_category(n.category)
    if n.lane is Lane.CRITICAL and rule.escalate:
        deliveries, later = split_for_escalation(p.deliveries, rule.escalate)
    if later:
        step = EscalationStep(
            notification_id=n.notification_id,
            recipient_id=n.recipient_id,
            lane=n.lane,
            due_at=datetime.fromtimestamp(now, UTC) + timedelta(seconds=rule.confirm_within_s),
            confirm_within_s=rule.confirm_within_s,
            steps=later,
        )
        futures.append(await topics.escalations.send(key=key, value=step))
    for delivery in deliveries:
        if delivery.channel in throttled:
            futures.append(
                await receipts.record(ctx, delivery, ReceiptStatus.THROTTLED, "rate_limited")
            )
        else:
            topic = topics.deliveries[(delivery.channel, n.lane)]
            in_place = ctx.in_place.get(delivery.channel, n.lane)
            # Sent with the loop turn's other records as one batch per partition
            # (streams/record_batches.py: send_soon), not one Faust send each.
            if in_place is None:
                futures.append(record_batches.send_soon(topic, key, delivery))
            else:  # delivered here; the record is the log of it (streams/in_place.py)
                futures.append(await in_place(delivery))
                futures.append(record_batches.send_soon(topic, key, delivery, IN_PLACE_HEADERS))
            metrics.delivery_planned(delivery)
    if p.receipt is not None:  # counted as a dropped notification by receipts.send
        futures.append(await receipts.send(ctx, p.receipt))
    for note in p.notes:  # e.g. `degraded`: sent, but with fallback text
        futures.append(await receipts.send(ctx, note))
    return futures


async def drop(
    ctx: StageContext, n: Notification, status: ReceiptStatus, reason: str, now: float
) -> None:
    receipt = for_notification(n, status, reason, datetime.fromtimestamp(now, UTC))
    await receipts.send(ctx, receipt)  # counted as a dropped notification
