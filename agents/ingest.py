"""ingest: validate · dedupe(event_id) · classify → a priority lane keyed by recipient.

Bad input goes to dlq.events with the original key and bytes untouched and the reason in
headers (the Kafka Connect DLQ convention), and the agent carries on.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import faust
from faust.types import Message

from agents import positions
from logic.classify import to_notification
from logic.dedupe import is_duplicate
from logic.replay import ingress_position, replay_marker
from logic.rules import load_rules
from logic.validation import Rejection, decode_event
from schemas.events import LiveStartedEvent
from streams import metrics, topics
from streams.app import app
from streams.catalog import INGRESS_LANE
from tables.state import seen_events

log = logging.getLogger("clarion.ingest")
_settings = app.settings
_rules = load_rules(_settings.rules_path)


def dlq_headers(message: Message, rejection: Rejection, now: datetime) -> dict[str, bytes]:
    return {
        "clarion.dlq.reason": rejection.reason.value.encode(),
        "clarion.dlq.detail": rejection.detail.encode(),
        "clarion.dlq.source.topic": message.topic.encode(),
        "clarion.dlq.source.partition": str(message.partition).encode(),
        "clarion.dlq.source.offset": str(message.offset).encode(),
        "clarion.dlq.at": now.isoformat().encode(),
    }


async def _ingest(stream: faust.StreamT) -> None:
    async for event in stream.events():
        message = event.message
        positions.observe(message.tp, message.offset)
        now = datetime.now(UTC)
        # A replayed record is processed as the original message at its original position
        # (same dedupe entry, same window watermark, same ids); see logic/replay.py.
        replay = replay_marker(message.headers)
        partition, offset = ingress_position(
            replay, message.topic, message.partition, message.offset
        )
        decoded = decode_event(message.value, _settings.max_event_bytes)
        if isinstance(decoded, Rejection):
            if replay is not None and not replay.forwards:
                continue  # state-only sends nothing, not even a second dead letter
            log.warning(
                "dead-lettered %s[%d]@%d: %s (%s)",
                message.topic,
                message.partition,
                message.offset,
                decoded.reason.value,
                decoded.detail,
            )
            await topics.dlq_events.send(
                key=message.key, value=message.value, headers=dlq_headers(message, decoded, now)
            )
            metrics.events_dead_lettered.labels(decoded.reason.value).inc()
            continue
        if is_duplicate(seen_events.get(decoded.event_id), offset):
            metrics.events_duplicate.labels(decoded.type).inc()
            continue
        seen_events[decoded.event_id] = [offset, now.timestamp()]
        metrics.inc(metrics.events_in, decoded.type)
        if replay is not None and not replay.forwards:
            continue  # state-only: the dedupe state is rebuilt, nothing goes onward
        if isinstance(decoded, LiveStartedEvent):
            # Audiences are resolved by the fan-out stage; park the broadcast for it.
            await topics.broadcasts.send(key=decoded.audience.of.encode(), value=decoded)
            continue
        notification = to_notification(decoded, _rules, now, f"{message.topic}:{partition}", offset)
        await topics.lanes[notification.lane].send(
            key=notification.recipient_id.encode(), value=notification
        )


# One agent per ingress topic, so a backlog on one domain's topic is not queued in front
# of another's. concurrency=1: the agent writes a table (FAUST_NOTES.md, "Agents and tables").
for _name, _topic in topics.ingress.items():
    if INGRESS_LANE[_name] in _settings.served_lanes:
        app.agent(_topic, name=f"ingest.{_name}", concurrency=1)(_ingest)
