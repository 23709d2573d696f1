"""route: look up the recipient's preferences and contacts (co-partitioned tables), apply
opt-outs and TTL, render, and emit one delivery per channel and target."""

from __future__ import annotations

from datetime import UTC, datetime

import faust

from logic.render import default_renderer
from logic.routing import plan_deliveries
from logic.rules import load_rules
from schemas.common import Lane
from schemas.notifications import Notification
from streams import topics
from streams.app import app
from tables.state import contacts, preferences

_rules = load_rules(app.settings.rules_path)
_renderer = default_renderer()


def _make_route(lane: Lane) -> None:
    async def route(stream: faust.StreamT[Notification]) -> None:
        async for notification in stream:
            key = notification.recipient_id.encode()
            plan = plan_deliveries(
                notification,
                preferences.get(key),
                contacts.get(key),
                _rules,
                _renderer,
                datetime.now(UTC),
            )
            for delivery in plan.deliveries:
                await topics.deliveries[(delivery.channel, lane)].send(key=key, value=delivery)
            if plan.receipt is not None:
                await topics.receipts.send(key=key, value=plan.receipt)

    app.agent(topics.lanes[lane], name=f"route.{lane.value}", concurrency=1)(route)


for _lane in Lane:
    _make_route(_lane)
