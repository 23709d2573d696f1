"""retry: deliveries that failed transiently go back on their delivery topic when due (the
sink then checks the ledger and tries again with attempt+1).

In a lane-split deployment every group reads `deliveries.retry`; only the group serving
the delivery's lane (whose sink asked for the retry) republishes it, so a retry goes out
once, not once per group (logic/ownership.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

from agents.delay import run_when_due
from logic.ownership import owns_lane
from schemas.control import RetryRequest
from streams import metrics

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext


def install(app: ClarionApp, ctx: StageContext) -> None:
    topics = ctx.topics

    async def _republish(request: RetryRequest) -> None:
        d = request.delivery
        metrics.inc(metrics.retries_republished, d.lane.value, d.channel.value)
        await (
            await topics.deliveries[(d.channel, d.lane)].send(key=d.recipient_id.encode(), value=d)
        )

    @app.agent(topics.retries, name="retry", concurrency=1)
    async def retry(stream: faust.StreamT[RetryRequest]) -> None:
        served = app.settings.served_lanes
        await run_when_due(
            stream,
            lambda r: r.due_at,
            _republish,
            owned=lambda r: owns_lane(served, r.delivery.lane),
            queue_limit=app.settings.delay_queue_limit,
        )
