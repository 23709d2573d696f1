"""graph: keep the `followers` table in step with the compacted `follows` topic.

`follows` only feeds this table, so it is read in batches by a topic loader
(streams/topic_loader.py: a plain aiokafka consumer on the partitions whose `followers`
partition this worker owns), not by a Faust agent: no Faust event per edge. Each edge is
validated and written with `tables.changelog.write_in` (the row at once, its changelog
record written behind); a tombstone deletes the edge. A record whose value or key is
invalid goes to dlq.events with the reason and its original bytes (like ingest's rejects)
and is not applied; the loader commits past it only once the broker has the dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from logic.topic_names import graph_group
from logic.validation import Rejection, RejectReason
from schemas.graph import FollowEdge
from streams import deadletter
from streams.topic_loader import Apply, TopicLoader, as_message, started_with_the_app
from tables import changelog
from tables.keys import BadEdgeKey, check_edge_key

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext

log = logging.getLogger("clarion.graph")


def followed_at(key: bytes | None, value: bytes, timestamp_ms: int) -> float | Rejection:
    """A `follows` record's row: when the edge was made (unix seconds; the record's
    timestamp if the edge does not say), or why the record is refused."""
    try:
        edge = FollowEdge.model_validate_json(value)
        check_edge_key(key, edge.actor_id, edge.follower_id)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return Rejection(RejectReason.SCHEMA_VIOLATION, detail[:500])
    except BadEdgeKey as exc:
        return Rejection(RejectReason.BAD_KEY, str(exc))
    if edge.followed_at is None:
        return timestamp_ms / 1000
    return edge.followed_at.timestamp()


def applier(app: ClarionApp, ctx: StageContext) -> Apply:
    """The loader's `apply` for `follows` -> `followers` (streams/topic_loader.Apply)."""
    followers, dlq = ctx.tables.followers, ctx.topics.dlq_events
    budget = app.settings.dead_letter_max_bytes

    def apply(partition: int, records: Sequence[ConsumerRecord]) -> list[Awaitable[None]]:
        dead: list[Awaitable[None]] = []
        for record in records:
            key: bytes | None = record.key
            if record.value is None:  # unfollow
                if key:
                    changelog.write_in(followers, partition, key, None)
                continue
            row = followed_at(key, record.value, record.timestamp)
            if isinstance(row, Rejection):
                log.warning(
                    "dead-lettered follows[%d]@%d: %s (%s)",
                    record.partition, record.offset, row.reason.value, row.detail,
                )  # fmt: skip
                dead.append(
                    deadletter.record(dlq, as_message(record), row.reason.value, row.detail,
                                      budget=budget)
                )  # fmt: skip
                continue
            changelog.write_in(followers, partition, key, row)
        return dead

    return apply


def install(app: ClarionApp, ctx: StageContext) -> None:
    # The graph is read only by the fan-out, on the same partitions.
    if not app.settings.runs_fanout:
        return
    settings = app.settings
    loader = TopicLoader(
        app,
        topics=[ctx.topics.follows.get_topic_name()],
        table=ctx.tables.followers,
        apply=applier(app, ctx),
        group_id=graph_group(settings.app_id),
        bootstrap_servers=settings.bootstrap_servers,
    )
    app.service(started_with_the_app(loader))
