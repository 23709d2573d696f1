"""The feedback agent (agents/feedback.py), in-process: provider feedback about a send the
provider had accepted (SendGrid's Event Webhook) becomes a receipt, a contact or preference
update and, for a bounce, a dead letter written the way the provider sinks write theirs
(streams/deadletter.delivery): the same header set, a `failed` receipt, and the same two
metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from logic import deadletter
from schemas.common import Channel
from schemas.control import FeedbackKind, ProviderFeedback
from schemas.users import Preferences
from streams import metrics
from tests.stages.harness import StageHarness
from tests.stages.inputs import DELIVERY_DLQ_HEADERS, contacts

UID = "alice"
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def feedback(kind: FeedbackKind, **kw: Any) -> ProviderFeedback:
    fields: dict[str, Any] = {
        "recipient_id": UID,
        "delivery_id": "dlv-1",
        "notification_id": "ntf-1",
        "channel": Channel.EMAIL,
        "provider": "sendgrid",
        "kind": kind,
        "address": f"{UID}@example.com",
        "reason": "550 5.1.1 unknown user",
        "at": AT,
        "attempt": 2,
    }
    return ProviderFeedback(**(fields | kw))


def sample(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def outcomes(status: str) -> float:
    return sample("clarion_delivery_outcomes_total", lane="", channel="email", status=status)


def dead_lettered() -> float:
    return sample(
        "clarion_deliveries_dead_lettered_total",
        lane="",
        channel="email",
        provider="sendgrid",
        status="failed",
    )


def receipts(stage: StageHarness) -> list[dict[str, Any]]:
    return [r.json() for r in stage.sent(stage.ctx.topics.receipts, key=UID)]


async def test_a_bounce_is_dead_lettered_like_a_sinks_failure_and_counted(
    stage: StageHarness,
) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    failed, dead = outcomes("failed"), dead_lettered()
    async with stage.run("feedback") as agent:
        event = await agent.put(feedback(FeedbackKind.BOUNCED), key=UID)

    [dlq] = stage.sent(stage.ctx.topics.dlq_deliveries)
    assert dlq.key == UID.encode()
    assert dlq.value == event.message.value  # the feedback record, byte for byte
    assert set(dlq.headers) == DELIVERY_DLQ_HEADERS
    assert {name: dlq.header(name) for name in DELIVERY_DLQ_HEADERS - {deadletter.AT}} == {
        deadletter.REASON: "sendgrid:550 5.1.1 unknown user",
        deadletter.DETAIL: "the provider reported bounced after accepting the send",
        deadletter.SOURCE_TOPIC: event.message.topic,
        deadletter.SOURCE_PARTITION: str(event.message.partition),
        deadletter.SOURCE_OFFSET: str(event.message.offset),
        deadletter.CHANNEL: "email",
        deadletter.PROVIDER: "sendgrid",
        deadletter.DELIVERY_ID: "dlv-1",
        deadletter.ATTEMPTS: "3",  # the accepted send was attempt 2 (0-based)
    }
    assert datetime.fromisoformat(dlq.header(deadletter.AT)).tzinfo is not None
    [receipt] = receipts(stage)
    assert (receipt["status"], receipt["reason"], receipt["delivery_id"], receipt["lane"]) == (
        "failed",
        "sendgrid:550 5.1.1 unknown user",
        "dlv-1",
        None,
    )
    # The same metrics as a sink's permanent failure (lane "": feedback names none).
    assert outcomes("failed") == failed + 1
    assert dead_lettered() == dead + 1
    # The bounced address is gone from the contact points.
    [update] = stage.sent(stage.ctx.topics.contacts, key=UID)
    assert update.json()["email"] is None


async def test_feedback_without_the_attempt_leaves_only_that_header_out(
    stage: StageHarness,
) -> None:
    async with stage.run("feedback") as agent:
        await agent.put(feedback(FeedbackKind.FAILED, attempt=None), key=UID)
    [dlq] = stage.sent(stage.ctx.topics.dlq_deliveries)
    assert set(dlq.headers) == DELIVERY_DLQ_HEADERS - {deadletter.ATTEMPTS}


async def test_a_complaint_opts_out_and_a_delivery_confirms_without_dead_letters(
    stage: StageHarness,
) -> None:
    failed, delivered, dead = outcomes("failed"), outcomes("delivered"), dead_lettered()
    async with stage.run("feedback") as agent:
        await agent.put(feedback(FeedbackKind.COMPLAINED, reason="spamreport"), key=UID)
        await agent.put(feedback(FeedbackKind.DELIVERED, reason="delivered"), key=UID)

    assert stage.sent(stage.ctx.topics.dlq_deliveries) == []
    assert [(r["status"], r["reason"]) for r in receipts(stage)] == [
        ("failed", "sendgrid:spamreport"),
        ("delivered", None),
    ]
    [prefs] = stage.sent(stage.ctx.topics.preferences, key=UID)
    assert Preferences.model_validate_json(prefs.value or b"").disabled_channels == {Channel.EMAIL}
    assert (outcomes("failed"), outcomes("delivered")) == (failed + 1, delivered + 1)
    assert dead_lettered() == dead  # a complaint is not dead-lettered
