"""Table writes for the hot path: the row into the store and its changelog record straight
to the producer, without Faust's per-write machinery.

A Faust table write (`table[key] = value`) builds a FutureMessage and a PendingMessage,
queues them in Faust's producer buffer, calls the table's sensors and TTL hooks, and later
publishes the record from a service task: about 250 µs of CPU per write on this machine
(docs/architecture.md, "Hops"). Here the row goes to the current event's partition of the
store at once, and its changelog record is held (write-behind, streams/record_batches.py)
for `HOLD_S`, then handed to the producer with the other held records of its changelog
partition as one record batch. A key written again before that keeps only
its last value: a window folding a burst of likes sends one record, not one per like.
Once the broker has a batch, the store records its offset, as Faust's own writes do.

The guarantee is Faust's own: an offset commit first flushes the producer (Faust's
`Consumer._commit_offsets`), and the producer's flush first submits every held record
(streams/consumer.py: ClarionProducer), so a source offset is never committed before the
changelog records its processing wrote.

Order: a key's records must reach the changelog in the order its row was written, or a
restore ends with an older value than the store had. A write puts the row and holds the
record with no wait in between (so no other write can come between them), the held
records of a partition go out in the order they were held (a key written again moves to
the end), and submits run one at a time. All writes of a table take this one path
(Faust's path would send at another time).
The tables written here are `seen-events` (agents/ingest.py), `digests`
(agents/digest.py), `buckets` (agents/emit.py), `ledger` (sinks/deliver.py), `inbox`
(sinks/inapp.py, agents/confirm.py) and `followers` (agents/graph.py), and only through
this module. A
read-modify-write whose row another writer may change (the inbox) goes through `update`,
which reads, changes and writes with no wait in between.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from faust.streams import current_event
from faust.types import TP

from streams import faust_internals, record_batches


def get(table: Any, key: Any) -> Any | None:
    """`table.get(key)`, read from the partition of the event being processed with one
    store read (the hot path's lookups: dedupe, preferences, contacts)."""
    return faust_internals.store_get(table, key)


async def put(table: Any, key: Any, value: Any) -> None:
    """`table[key] = value`, on the partition of the event being processed."""
    _write(table, _event_partition(table), key, value)


def put_now(table: Any, key: Any, value: Any) -> None:
    """`put` for a synchronous caller (emit's token buckets, taken inside a plain function)."""
    _write(table, _event_partition(table), key, value)


async def delete(table: Any, key: Any) -> None:
    """`del table[key]` (a tombstone in the changelog), on the event's partition."""
    _write(table, _event_partition(table), key, None)


def write_in(table: Any, partition: int, key: Any, value: Any | None) -> None:
    """`table[key] = value` (None: delete) on `partition`, for a writer that reads its
    source outside Faust's streams, so there is no current event (streams/topic_loader.py).
    Synchronous: a batch's rows are written with no other write of the table between them."""
    _write(table, partition, key, value)


async def update(table: Any, key: Any, change: Callable[[Any | None], Any]) -> tuple[Any, Any]:
    """Read, change and write one row with no other write of the table in between
    (`table[key] = change(table.get(key))`: nothing here waits, so no other task runs
    between the read and the write). `change` gets the row (None if absent) and returns the
    new one, or the row it was given to write nothing. Returns (old, new)."""
    old = faust_internals.store_get(table, key)
    new = change(old)
    if new is not old:
        _write(table, _event_partition(table), key, new)
    return old, new


# How long a changelog record is held for more writes before it is sent (a commit sends it
# sooner). Nothing reads a changelog while its partition is active, so the hold delays no
# reader; it buys bigger batches and more writes of one key folded into one record:
# throughput benchmark, CPU per event 1,212 µs with no hold, 1,110 µs with 0.1 s.
HOLD_S = 0.1


def _event_partition(table: Any) -> int:
    event = current_event()
    if event is None:
        raise RuntimeError(f"{table.name}: a table row is written while processing a record")
    return int(event.message.partition)


def _write(table: Any, partition: int, key: Any, value: Any | None) -> None:
    # No await in here: the row and its held record are written with no other write between.
    serializers = table.app.serializers
    raw_key = serializers.dumps_key(table.key_type, key, serializer=table.key_serializer)
    raw_value = (
        None
        if value is None
        else serializers.dumps_value(table.value_type, value, serializer=table.value_serializer)
    )
    faust_internals.store_set(table, partition, key, raw_key, raw_value)
    # Held for HOLD_S and then sent as one batch per changelog partition, the key's last
    # value only (write-behind); the commit's producer flush submits what is still held
    # first (streams/record_batches.py).
    topic = table.changelog_topic.get_topic_name()
    written = functools.partial(_persisted, table, TP(topic, partition))
    pending = record_batches.pending(table.app.producer, HOLD_S)
    pending.add(topic, partition, raw_key, raw_value, written)


def _persisted(table: Any, tp: TP, offset: int) -> None:
    """Once the broker has a batch, the store remembers its first offset (as Faust's own
    writes remember theirs): a recovery on this disk then reads the changelog from there,
    not from the start. Every row of the batch is already in the store, so reading its
    other records again on recovery is harmless."""
    table.data.set_persisted_offset(tp, offset)
