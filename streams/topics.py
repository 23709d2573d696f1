"""Faust topic objects for every topic in the catalog. Kafka keys are raw UTF-8 user ids so
that any producer's default (murmur2) partitioner agrees with Clarion's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import faust

from schemas.common import Channel, Lane
from schemas.control import Confirmation, EscalationStep, ProviderFeedback, RetryRequest
from schemas.events import LiveStartedEvent
from schemas.graph import FanoutTask
from schemas.notifications import Delivery, Notification, Receipt
from schemas.presence import GatewayPush, PresenceEvent
from schemas.users import ContactPoints, Preferences
from streams import catalog
from streams.codec import PydanticCodec

if TYPE_CHECKING:
    from streams.guard import Guard
    from streams.settings import Settings

preferences_codec: PydanticCodec[Preferences] = PydanticCodec(Preferences)
contacts_codec: PydanticCodec[ContactPoints] = PydanticCodec(ContactPoints)
# (topic name, message) -> the record dead-lettered; see DeadLetteringTopic.
DecodeErrorHook = Callable[[Exception, faust.types.Message], Awaitable[None]]


class DeadLetteringTopic(faust.Topic):  # type: ignore[misc]
    """A topic whose undecodable records go to a dead-letter topic with their bytes.

    Faust acks a record whose value does not decode and only logs it; for Clarion that is a
    lost record. The conductor awaits this hook before it moves on, so the dead letter is in
    the producer's buffer before the next commit (which flushes the producer first).
    `on_undecodable` (kept by Faust's clones of the topic) sends it; see Topics."""

    def __init__(
        self, *args: Any, on_undecodable: DecodeErrorHook | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_undecodable = on_undecodable

    def _clone_args(self) -> Mapping[str, Any]:
        return {**super()._clone_args(), "on_undecodable": self.on_undecodable}

    async def on_decode_error(self, exc: Exception, message: faust.types.Message) -> None:
        if self.on_undecodable is not None:
            await self.on_undecodable(exc, message)


class Topics:
    """One app's topic objects, one attribute per catalog topic (names get the prefix)."""

    # The profile topics carry raw bytes; these codecs read and write their values.
    preferences_codec = preferences_codec
    contacts_codec = contacts_codec

    def __init__(self, app: faust.App, settings: Settings, guard: Guard) -> None:
        self._settings = _settings = settings
        self._guard = guard

        def _topic(name: str, value_serializer: Any) -> faust.TopicT:
            return DeadLetteringTopic(
                app,
                topics=[_settings.topic(name)],
                key_type=bytes,
                key_serializer="raw",
                value_serializer=value_serializer,
                partitions=_settings.partitions,
                on_undecodable=self._undecodable,
            )

        # Ingress carries raw bytes: validation (and the DLQ for what fails it) is Clarion's.
        self.ingress: dict[str, faust.TopicT] = {
            name: _topic(name, "raw") for name in catalog.INGRESS
        }
        self.preferences = _topic(catalog.PREFERENCES, "raw")
        self.contacts = _topic(catalog.CONTACTS, "raw")
        self.events_rekeyed = _topic(catalog.EVENTS_REKEYED, "raw")
        self.profiles_rekeyed = _topic(catalog.PROFILES_REKEYED, "raw")
        self.lanes: dict[Lane, faust.TopicT] = {
            lane: _topic(catalog.lane_topic(lane), PydanticCodec(Notification)) for lane in Lane
        }
        self.deliveries: dict[tuple[Channel, Lane], faust.TopicT] = {
            (ch, lane): _topic(catalog.delivery_topic(ch, lane), PydanticCodec(Delivery))
            for ch in Channel
            for lane in Lane
        }
        self.broadcasts = _topic(catalog.BROADCASTS, PydanticCodec(LiveStartedEvent))
        self.follows = _topic(catalog.FOLLOWS, "raw")
        self.fanout_tasks = _topic(catalog.FANOUT_TASKS, PydanticCodec(FanoutTask))
        self.ticks = _topic(catalog.TICKS, "json")
        self.receipts = _topic(catalog.RECEIPTS, PydanticCodec(Receipt))
        self.dlq_events = _topic(catalog.DLQ_EVENTS, "raw")
        self.retries = _topic(catalog.RETRIES, PydanticCodec(RetryRequest))
        # Raw: a dead letter keeps the delivery's original bytes.
        self.dlq_deliveries = _topic(catalog.DLQ_DELIVERIES, "raw")
        self.escalations = _topic(catalog.ESCALATIONS, PydanticCodec(EscalationStep))
        self.confirmations = _topic(catalog.CONFIRMATIONS, PydanticCodec(Confirmation))
        self.feedback = _topic(catalog.FEEDBACK, PydanticCodec(ProviderFeedback))
        self.presence = _topic(catalog.PRESENCE, PydanticCodec(PresenceEvent))
        # Its own partition count (one partition per gateway, not per user): see the catalog.
        self.gateway_deliveries = app.topic(
            _settings.topic(catalog.GATEWAY_DELIVERIES),
            key_type=bytes,
            key_serializer="raw",
            value_serializer=PydanticCodec(GatewayPush),
            partitions=catalog.GATEWAY_PARTITIONS,
        )

    async def _undecodable(self, exc: Exception, message: faust.types.Message) -> None:
        name = message.topic
        deliveries = name.startswith(self._settings.topic("deliveries."))
        dlq = self.dlq_deliveries if deliveries else self.dlq_events
        await self._guard.dead_letter_message(
            dlq, message, self._guard.REASON_UNDECODABLE, exc, stage=f"decode:{name}"
        )
