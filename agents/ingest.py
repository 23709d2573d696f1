"""ingest: validate · dedupe(event_id) · classify → route, in place for the lanes this
group serves (agents/route.py), else onto the lane's topic keyed by recipient.

Bad input goes to dlq.events with the original key and bytes untouched and the reason in
headers (the Kafka Connect DLQ convention), and the agent carries on.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import faust

from agents import route
from logic.classify import to_notification
from logic.dedupe import is_duplicate
from logic.partitioning import partition_of
from logic.rekey import needs_rekey, rekey_headers, rekey_source
from logic.replay import Source, ingress_position, replay_marker
from logic.validation import EventClock, Rejection, decode_event
from schemas.events import LiveStartedEvent
from streams import deadletter, metrics
from streams.catalog import INGRESS_LANE
from tables import changelog, keys
from tables.rows import SeenEvent

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext

log = logging.getLogger("clarion.ingest")


def install(app: ClarionApp, ctx: StageContext) -> None:
    _settings, _rules, topics, guard = ctx.settings, ctx.rules, ctx.topics, ctx.guard
    positions, seen_events = ctx.positions, ctx.tables.seen_events

    async def _ingest(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await guard.guarded("ingest", topics.dlq_events, event.message, _one(event))

    async def _one(event: faust.EventT) -> None:
        message = event.message
        positions.observe(message.tp, message.offset)
        now = datetime.now(UTC)
        # A replayed record is processed as the original message at its original position
        # (same dedupe entry, same window watermark, same ids); see logic/replay.py.
        replay = replay_marker(message.headers)
        # A re-keyed copy stands for the original record at its original position (see
        # logic/rekey.py), as a replayed record does for the one it replays.
        rekeyed = rekey_source(message.headers) if message.topic == _rekeyed_topic else None
        if rekeyed is not None:
            if rekeyed.topic not in _served_ingress:
                return  # another lane group's ingress: that group handles it
            source_topic, partition, offset = rekeyed.topic, rekeyed.partition, rekeyed.offset
        else:
            source_topic = message.topic
            partition, offset = ingress_position(
                replay, message.topic, message.partition, message.offset
            )
        clock = EventClock(now, _settings.max_future_skew_s)
        decoded = decode_event(message.value, _settings.max_event_bytes, clock)
        if isinstance(decoded, Rejection):
            if replay is not None and not replay.forwards:
                return  # state-only sends nothing, not even a second dead letter
            log.warning(
                "dead-lettered %s[%d]@%d: %s (%s)",
                message.topic,
                message.partition,
                message.offset,
                decoded.reason.value,
                decoded.detail,
            )
            # Returns once the broker has it; until then the record's offset is held.
            await deadletter.record(
                topics.dlq_events, message, decoded.reason.value, decoded.detail,
                budget=_settings.dead_letter_max_bytes, now=now,
            )  # fmt: skip
            return
        source = f"{source_topic}:{partition}"
        notification = None
        if not isinstance(decoded, LiveStartedEvent):
            notification = to_notification(decoded, _rules, now, source, offset)
            # Dedupe, windows and the route's table lookups all live on the recipient's
            # partition; a record a foreign partitioner put elsewhere is forwarded there.
            owner = partition_of(notification.recipient_id, _settings.partitions)
            if needs_rekey(owner, message.partition, rekeyed is not None):
                await topics.events_rekeyed.send(
                    key=notification.recipient_id.encode(),
                    value=message.value,
                    partition=owner,
                    headers=rekey_headers(message.headers, Source(source_topic, partition, offset)),
                )
                metrics.events_rekeyed.inc()
                return
        seen_key = keys.seen_key(decoded.event_id)
        if is_duplicate(changelog.get(seen_events, seen_key), source, offset):
            metrics.events_duplicate.labels(decoded.type).inc()
            return
        await changelog.put(seen_events, seen_key, SeenEvent(offset, now.timestamp(), source))
        metrics.inc(metrics.events_in, decoded.type)
        if replay is not None and not replay.forwards:
            return  # state-only: the dedupe state is rebuilt, nothing goes onward
        if notification is None:
            assert isinstance(decoded, LiveStartedEvent)
            # Audiences are resolved by the fan-out stage; park the broadcast for it.
            await topics.broadcasts.send(key=decoded.audience.of.encode(), value=decoded)
            return
        lane = notification.lane
        if lane in _settings.served_lanes:
            # Routed in place: the record is on the recipient's partition already (re-keyed
            # above if not), and the tables route needs are co-partitioned with it. A hop
            # through the lane topic cost a Faust hop and a record per event; see
            # docs/architecture.md, "Hops". The route's failure is dead-lettered as its own.
            await guard.guarded(
                f"route.{lane.value}",
                topics.dlq_events,
                message,
                route.route_one(ctx, lane, notification, message),
            )
            return
        # A lane another group serves (the split topology): its route agents read it there.
        await topics.lanes[lane].send(key=notification.recipient_id.encode(), value=notification)

    # One agent per ingress topic, so a backlog on one domain's topic is not queued in front
    # of another's. concurrency=1: the agent writes a table (docs/architecture.md, "Guarantees").
    _served_ingress = frozenset(
        _settings.topic(name)
        for name in INGRESS_LANE
        if INGRESS_LANE[name] in _settings.served_lanes
    )
    _rekeyed_topic = topics.events_rekeyed.get_topic_name()
    for _name, _topic in topics.ingress.items():
        if INGRESS_LANE[_name] in _settings.served_lanes:
            app.agent(_topic, name=f"ingest.{_name}", concurrency=1)(_ingest)
    # Every group that ingests reads the re-keyed copies and keeps those of its own ingress
    # topics, so each copy is handled by exactly one group.
    if _served_ingress:
        app.agent(topics.events_rekeyed, name="ingest.rekeyed", concurrency=1)(_ingest)
