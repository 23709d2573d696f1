"""Faust topic objects for every topic in the catalog. Kafka keys are raw UTF-8 user ids so
that any producer's default (murmur2) partitioner agrees with Clarion's."""

from __future__ import annotations

from typing import Any

import faust

from schemas.common import Channel, Lane
from schemas.control import Confirmation, EscalationStep, ProviderFeedback, RetryRequest
from schemas.events import LiveStartedEvent
from schemas.graph import FanoutTask
from schemas.notifications import Delivery, Notification, Receipt
from schemas.presence import GatewayPush, PresenceEvent
from schemas.users import ContactPoints, Preferences
from streams import catalog, guard
from streams.app import app
from streams.codec import PydanticCodec

_settings = app.settings
guard.install_faults(_settings.fault_injection)


class DeadLetteringTopic(faust.Topic):  # type: ignore[misc]
    """A topic whose undecodable records go to a dead-letter topic with their bytes.

    Faust acks a record whose value does not decode and only logs it; for Clarion that is a
    lost record. The conductor awaits this hook before it moves on, so the dead letter is in
    the producer's buffer before the next commit (which flushes the producer first)."""

    async def on_decode_error(self, exc: Exception, message: faust.types.Message) -> None:
        name = message.topic
        dlq = dlq_deliveries if name.startswith(_settings.topic("deliveries.")) else dlq_events
        await guard.dead_letter_message(
            dlq, message, guard.REASON_UNDECODABLE, exc, stage=f"decode:{name}"
        )


def _topic(name: str, value_serializer: Any) -> faust.TopicT:
    return DeadLetteringTopic(
        app,
        topics=[_settings.topic(name)],
        key_type=bytes,
        key_serializer="raw",
        value_serializer=value_serializer,
        partitions=_settings.partitions,
    )


# Ingress carries raw bytes: validation (and the DLQ for what fails it) is Clarion's job.
ingress: dict[str, faust.TopicT] = {name: _topic(name, "raw") for name in catalog.INGRESS}
preferences = _topic(catalog.PREFERENCES, "raw")
contacts = _topic(catalog.CONTACTS, "raw")
events_rekeyed = _topic(catalog.EVENTS_REKEYED, "raw")
profiles_rekeyed = _topic(catalog.PROFILES_REKEYED, "raw")
lanes: dict[Lane, faust.TopicT] = {
    lane: _topic(catalog.lane_topic(lane), PydanticCodec(Notification)) for lane in Lane
}
deliveries: dict[tuple[Channel, Lane], faust.TopicT] = {
    (ch, lane): _topic(catalog.delivery_topic(ch, lane), PydanticCodec(Delivery))
    for ch in Channel
    for lane in Lane
}
broadcasts = _topic(catalog.BROADCASTS, PydanticCodec(LiveStartedEvent))
follows = _topic(catalog.FOLLOWS, "raw")
fanout_tasks = _topic(catalog.FANOUT_TASKS, PydanticCodec(FanoutTask))
ticks = _topic(catalog.TICKS, "json")
receipts = _topic(catalog.RECEIPTS, PydanticCodec(Receipt))
dlq_events = _topic(catalog.DLQ_EVENTS, "raw")
retries = _topic(catalog.RETRIES, PydanticCodec(RetryRequest))
# Raw: a dead letter keeps the delivery's original bytes.
dlq_deliveries = _topic(catalog.DLQ_DELIVERIES, "raw")
escalations = _topic(catalog.ESCALATIONS, PydanticCodec(EscalationStep))
confirmations = _topic(catalog.CONFIRMATIONS, PydanticCodec(Confirmation))
feedback = _topic(catalog.FEEDBACK, PydanticCodec(ProviderFeedback))
presence = _topic(catalog.PRESENCE, PydanticCodec(PresenceEvent))
# Its own partition count (one partition per gateway, not per user): see the catalog.
gateway_deliveries = app.topic(
    _settings.topic(catalog.GATEWAY_DELIVERIES),
    key_type=bytes,
    key_serializer="raw",
    value_serializer=PydanticCodec(GatewayPush),
    partitions=catalog.GATEWAY_PARTITIONS,
)

preferences_codec: PydanticCodec[Preferences] = PydanticCodec(Preferences)
contacts_codec: PydanticCodec[ContactPoints] = PydanticCodec(ContactPoints)
