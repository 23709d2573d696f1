"""graph: keep the `followers` table in step with the compacted `follows` topic.

A record whose value or key is invalid goes to dlq.events with the reason and its original
bytes (like ingest's rejects); a tombstone deletes the edge.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import faust
from pydantic import ValidationError

from logic.validation import Rejection, RejectReason
from schemas.graph import FollowEdge
from streams import deadletter
from tables import changelog
from tables.keys import BadEdgeKey, check_edge_key

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext

log = logging.getLogger("clarion.graph")


def _edge(key: bytes | None, value: bytes) -> FollowEdge | Rejection:
    try:
        edge = FollowEdge.model_validate_json(value)
        check_edge_key(key, edge.actor_id, edge.follower_id)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return Rejection(RejectReason.SCHEMA_VIOLATION, detail[:500])
    except BadEdgeKey as exc:
        return Rejection(RejectReason.BAD_KEY, str(exc))
    return edge


def install(app: ClarionApp, ctx: StageContext) -> None:
    topics, followers = ctx.topics, ctx.tables.followers

    async def apply_follows(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            key: bytes | None = event.key
            if event.value is None:  # unfollow
                if key:
                    await changelog.delete(followers, key)
                continue
            edge = _edge(key, event.value)
            if isinstance(edge, Rejection):
                log.warning(
                    "dead-lettered follows[%d]@%d: %s (%s)",
                    message.partition,
                    message.offset,
                    edge.reason.value,
                    edge.detail,
                )
                await deadletter.record(
                    topics.dlq_events, message, edge.reason.value, edge.detail,
                    budget=app.settings.dead_letter_max_bytes,
                )  # fmt: skip
                continue
            assert key is not None
            followed_at = edge.followed_at or datetime.fromtimestamp(message.timestamp, UTC)
            await changelog.put(followers, key, followed_at.timestamp())

    # The graph is read only by the fan-out, on the same partitions.
    if app.settings.runs_fanout:
        app.agent(topics.follows, name="graph.follows", concurrency=1)(apply_follows)
