"""Table writes for the hot path: the row into the store and its changelog record straight
to the producer, without Faust's per-write machinery.

A Faust table write (`table[key] = value`) builds a FutureMessage and a PendingMessage,
queues them in Faust's producer buffer, calls the table's sensors and TTL hooks, and later
publishes the record from a service task: about 250 µs of CPU per write on this machine
(docs/architecture.md, "Hops"). Here the same two things happen directly: the row goes to
the current event's partition of the store, and the record to the same partition of the
changelog topic through the producer's `send` (the record sits in aiokafka's accumulator),
and once the broker has it the store records its offset, as Faust's own writes do.

The guarantee is Faust's own: an offset commit first flushes the producer (Faust's
`Consumer._commit_offsets`), so a source offset is never committed before the changelog
records its processing wrote.

Order: the records of a partition must reach the changelog in the order the rows were
written, or a restore ends with an older value than the store had. The producer's `send`
can wait (a full accumulator), so each table's writes hold one lock from the store write
until the record is in the accumulator: a second writer (another ingest agent routing in
place, the tick's flush) writes after it, in the store and in the changelog alike. For the
same reason all writes of a table take this one path (Faust's path sends later than this
one). The tables written here are `seen-events` (agents/ingest.py), `digests`
(agents/digest.py), `ledger` (sinks/deliver.py), `inbox` (sinks/inapp.py,
agents/confirm.py) and `followers` (agents/graph.py), and only through this module. A
read-modify-write whose row another writer may change (the inbox) reads under the same
lock (`update`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from faust.streams import current_event

from streams import faust_internals


async def put(table: Any, key: Any, value: Any) -> None:
    """`table[key] = value`, on the partition of the event being processed."""
    await _write(table, key, value)


async def delete(table: Any, key: Any) -> None:
    """`del table[key]` (a tombstone in the changelog), on the event's partition."""
    await _write(table, key, None)


async def update(table: Any, key: Any, change: Callable[[Any | None], Any]) -> tuple[Any, Any]:
    """Read, change and write one row with no other write of the table in between (a
    `table[key] = change(table.get(key))` that may wait for the producer). `change` gets the
    row (None if absent) and returns the new one, or the row it was given to write nothing.
    Returns (old, new)."""
    async with _lock(table):
        old = table.get(key)
        new = change(old)
        if new is not old:
            await _write_in_order(table, key, new)
        return old, new


# One lock per table (by identity: a table lives as long as its app).
_locks: dict[int, asyncio.Lock] = {}


def _lock(table: Any) -> asyncio.Lock:
    lock = _locks.get(id(table))
    if lock is None:
        lock = _locks[id(table)] = asyncio.Lock()
    return lock


async def _write(table: Any, key: Any, value: Any | None) -> None:
    async with _lock(table):
        await _write_in_order(table, key, value)


async def _write_in_order(table: Any, key: Any, value: Any | None) -> None:
    event = current_event()
    if event is None:
        raise RuntimeError(f"{table.name}: a table row is written while processing a record")
    partition = event.message.partition
    serializers = table.app.serializers
    raw_key = serializers.dumps_key(table.key_type, key, serializer=table.key_serializer)
    raw_value = (
        None
        if value is None
        else serializers.dumps_value(table.value_type, value, serializer=table.value_serializer)
    )
    faust_internals.store_set(table, key, raw_key, raw_value)
    # Not awaited for the broker: the commit's producer flush covers it.
    sent = await table.app.producer.send(
        table.changelog_topic.get_topic_name(), raw_key, raw_value, partition, None, None
    )
    sent.add_done_callback(functools.partial(_persisted, table))


def _persisted(table: Any, sent: asyncio.Future[Any]) -> None:
    """Once the broker has the record, the store remembers its offset (as Faust's own
    writes do): a recovery on this disk then reads the changelog from there, not from the
    start."""
    if sent.cancelled() or sent.exception() is not None:
        return
    metadata = sent.result()
    table.data.set_persisted_offset(metadata.topic_partition, metadata.offset)
