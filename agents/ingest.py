"""ingest: validate · dedupe(event_id) · classify → route, in place for the lanes this
group serves (agents/route.py), else onto the lane's topic keyed by recipient.

The ingress topics are read by topic loaders (streams/topic_loader.py), not Faust agents:
one per served lane (its ingress topics) and one for `events.rekeyed`, each on the
partitions of the tables this worker owns, in batches, committing under its own consumer
group once the producer has flushed what the batch wrote. So an event pays no Faust stream
machinery at all (docs/architecture.md, "Hops").

Bad input goes to dlq.events with the original key and bytes untouched and the reason in
headers (the Kafka Connect DLQ convention), and the loader carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRecord
from faust.types import Message

from agents import route
from logic.classify import to_notification
from logic.dedupe import is_duplicate
from logic.partitioning import partition_of
from logic.rekey import needs_rekey, rekey_headers, rekey_source
from logic.replay import Source, ingress_position, replay_marker
from logic.topic_names import ingest_group, rekeyed_ingest_group
from logic.validation import EventClock, Rejection, decode_event
from schemas.common import Lane
from schemas.events import LiveStartedEvent
from streams import deadletter, metrics
from streams.catalog import INGRESS_LANE
from streams.topic_loader import (
    Apply,
    TopicLoader,
    as_current_event,
    as_message,
    started_with_the_app,
)
from tables import changelog, keys
from tables.rows import SeenEvent

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext

log = logging.getLogger("clarion.ingest")
# A fetched batch may hold thousands of events: the loader lets the event loop run other
# work (another lane's loader, the agents) at least this often while it goes through one.
YIELD_EVERY_S = 0.002
# Records per fetched batch: enough to spread the fetch over many events, few enough that
# a batch's memory stays small.
BATCH_RECORDS = 2_000


def applier(ctx: StageContext) -> Apply:
    """Ingest as a topic loader's `apply`: each record of a fetched batch, in order, as the
    current event of its partition, under the stage guard (a failure dead-letters the
    record on dlq.events with its bytes, and the batch goes on). Nothing to wait for before
    the commit but the producer's flush, which the loader does."""
    _settings, _rules, topics, guard = ctx.settings, ctx.rules, ctx.topics, ctx.guard
    seen_events = ctx.tables.seen_events

    async def apply(partition: int, records: Sequence[ConsumerRecord]) -> list[Awaitable[Any]]:
        yielded = time.perf_counter()
        ebb = ctx.app.producer.buffer.wait_until_ebb
        for record in records:
            # What Faust's conductor does before each record it hands to a stream: wait while
            # Faust's producer buffer (lane and control topic sends) is over its limit.
            await ebb()
            message = as_message(record)
            with as_current_event(message):
                await guard.guarded("ingest", topics.dlq_events, message, _one(message))
            if time.perf_counter() - yielded >= YIELD_EVERY_S:
                await asyncio.sleep(0)
                yielded = time.perf_counter()
        return []

    async def _one(message: Message) -> None:
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

    # This group's ingress topics: a re-keyed copy of another group's is skipped.
    _served_ingress = frozenset(name for names in served_ingress(ctx).values() for name in names)
    _rekeyed_topic = topics.events_rekeyed.get_topic_name()
    return apply


def served_ingress(ctx: StageContext) -> dict[Lane, list[str]]:
    """The ingress topics (full names) of each lane this group serves."""
    settings, topics = ctx.settings, ctx.topics
    found: dict[Lane, list[str]] = {}
    for name, topic in topics.ingress.items():
        if INGRESS_LANE[name] in settings.served_lanes:
            found.setdefault(INGRESS_LANE[name], []).append(topic.get_topic_name())
    return found


def install(app: ClarionApp, ctx: StageContext) -> None:
    """One topic loader per served lane on its ingress topics, so a backlog on one lane's
    topics is not queued in front of another's, and one on `events.rekeyed`: every group
    that ingests reads the re-keyed copies and keeps those of its own ingress topics, so
    each copy is handled by exactly one group. All on the partitions of `seen-events`
    (co-partitioned with every table ingest and route write) this worker owns."""
    settings = ctx.settings
    apply = applier(ctx)
    by_lane = served_ingress(ctx)
    readers: list[tuple[list[str], str]] = [
        (topics, ingest_group(settings.app_id, lane)) for lane, topics in by_lane.items()
    ]
    if by_lane:
        readers.append(
            ([ctx.topics.events_rekeyed.get_topic_name()], rekeyed_ingest_group(settings.app_id))
        )
    for topics, group in readers:
        loader = TopicLoader(
            app,
            topics=topics,
            table=ctx.tables.seen_events,
            apply=apply,
            group_id=group,
            bootstrap_servers=settings.bootstrap_servers,
            max_records=BATCH_RECORDS,
        )
        ctx.positions.read_by(loader)  # windows ask it whether ingress is caught up
        app.service(started_with_the_app(loader))
