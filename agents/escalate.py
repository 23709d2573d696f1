"""escalate: a critical notification the user has not confirmed in time goes out on the
next channel of its ladder (push → SMS → email), one step per `confirm_within_s`, and
stops at the first confirmation (POST /inapp/ack, see agents/confirm.py).

Steps are records on `escalations`, keyed by recipient like `confirmations`, so the
`confirmed` table row for the user is on this worker. A step replayed after a crash sends
the same deterministic delivery ids again, which the sinks' ledger skips.

In a lane-split deployment only the group serving the notification's lane (critical) acts
on a step: with every group acting, each rung would be sent, and the next step scheduled,
once per group (logic/ownership.py). That group's `confirm` agent keeps its `confirmed`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import faust

from agents.delay import run_when_due
from logic.ownership import owns_lane
from schemas.control import EscalationStep
from schemas.notifications import ReceiptStatus
from streams import metrics, receipts
from tables import keys

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext


def install(app: ClarionApp, ctx: StageContext) -> None:
    topics, confirmed = ctx.topics, ctx.tables.confirmed

    async def _step(step: EscalationStep) -> None:
        if confirmed.get(keys.confirmed_key(step.recipient_id, step.notification_id)) is not None:
            metrics.escalation_steps.labels("confirmed").inc()
            return
        metrics.escalation_steps.labels("sent").inc()
        key = step.recipient_id.encode()
        futures: list[Any] = []
        for d in step.steps[0]:
            futures.append(await topics.deliveries[(d.channel, d.lane)].send(key=key, value=d))
            metrics.delivery_planned(d)
            futures.append(await receipts.record(ctx, d, ReceiptStatus.ESCALATED, "not_confirmed"))
        if len(step.steps) > 1:
            due = datetime.now(UTC) + timedelta(seconds=step.confirm_within_s)
            following = step.model_copy(update={"due_at": due, "steps": step.steps[1:]})
            futures.append(await topics.escalations.send(key=key, value=following))
        for future in futures:
            await future

    @app.agent(topics.escalations, name="escalate", concurrency=1)
    async def escalate(stream: faust.StreamT[EscalationStep]) -> None:
        served = app.settings.served_lanes
        await run_when_due(
            stream,
            lambda s: s.due_at,
            _step,
            owned=lambda s: owns_lane(served, s.lane),
            queue_limit=app.settings.delay_queue_limit,
        )
