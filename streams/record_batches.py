"""Many records to one topic, as one Kafka record batch per partition.

Faust's `topic.send` costs about 100 µs of CPU per record (a FutureMessage, a
PendingMessage, the producer buffer, a future per record); aiokafka's `send` about 40 µs.
A stage that writes hundreds of records at once (a fan-out page: one notification per
follower) fills aiokafka `BatchBuilder`s instead, a few µs per record, and hands each
batch to the producer whole, with one future per batch.

The guarantee is the one tables/changelog.py relies on: the batches sit in the same
producer's accumulator, and Faust flushes that producer before it commits an offset, so
the record being processed is never committed before the records it sent. Callers await
`send_records` (it returns once every batch is queued), so the batches are queued before
the event is acked. The table changelogs' write-behind (`PendingRecords`, below) sends its
held records the same way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from streams import faust_internals

log = logging.getLogger("clarion.record_batches")

Record = tuple[int, bytes, bytes]  # (partition, key, value)


async def send_records(producer: Any, topic: str, records: Iterable[Record]) -> None:
    """Send `records` to `topic`, each to its own partition, in their order per partition."""
    by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
    for partition, key, value in records:
        by_partition.setdefault(partition, []).append((key, value))
    for partition, items in by_partition.items():
        await _send_batches(producer, topic, partition, items)


def _watch(sent: asyncio.Future[Any], topic: str) -> None:
    sent.add_done_callback(lambda f: _failed(f, topic))


def _failed(sent: asyncio.Future[Any], topic: str) -> None:
    # aiokafka retries a batch until the producer's request timeout; a batch that still
    # fails is reported here (Faust's own sends and tables/changelog.py are no stricter).
    if not sent.cancelled() and sent.exception() is not None:
        log.error("%s: a record batch was not written: %r", topic, sent.exception())


# -- write-behind: records held for a moment (or until the next commit) ----------------------

Written = Callable[[int], None]  # called with the base offset of the batch the record went in


class PendingRecords:
    """Records handed to the producer later, as whole batches: the last value of each key of
    each (topic, partition), so a key written many times between two submits (a window
    folding a burst of likes) costs one record.

    Only for topics read as a key's last value (table changelogs): the changelog of a key
    still ends with its last value, and no reader sees the values skipped in between.

    A submit is scheduled `hold_s` after the first record arrives, and the producer's
    flush (which Faust awaits before every offset commit) submits whatever is left first
    (streams/consumer.py: ClarionProducer), so a commit never passes an event whose records
    are still held here. Submits run one at a time, so a partition's batches reach the
    producer in the order their records were added.
    """

    def __init__(self, producer: Any, hold_s: float) -> None:
        self._producer = producer
        self._hold_s = hold_s
        self._held: dict[tuple[str, int], dict[bytes, bytes | None]] = {}
        self._on_written: dict[tuple[str, int], Written] = {}
        self._lock = asyncio.Lock()
        self._scheduled = False

    def add(
        self, topic: str, partition: int, key: bytes, value: bytes | None, on_written: Written
    ) -> None:
        tp = (topic, partition)
        held = self._held.get(tp)
        if held is None:
            held = self._held[tp] = {}
        held.pop(key, None)  # the key's last value goes after every other key's held one
        held[key] = value
        self._on_written[tp] = on_written
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self._hold_s, self._start_submit)

    def _start_submit(self) -> None:
        task = asyncio.get_running_loop().create_task(self.submit())
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    async def submit(self) -> None:
        """Hand every held record to the producer; returns once they are in its buffer."""
        async with self._lock:
            self._scheduled = False
            held, self._held = self._held, {}
            on_written, self._on_written = self._on_written, {}
            for (topic, partition), records in held.items():
                callback = on_written[(topic, partition)]
                batches = await _send_batches(self._producer, topic, partition, records.items())
                for sent in batches:
                    sent.add_done_callback(functools.partial(_written, callback=callback))


# Submit tasks in flight (the loop keeps only weak references to tasks).
_tasks: set[asyncio.Task[None]] = set()
_pending: weakref.WeakKeyDictionary[Any, PendingRecords] = weakref.WeakKeyDictionary()


def pending(producer: Any, hold_s: float) -> PendingRecords:
    """The write-behind buffer of `producer` (one per producer, made on first use with
    `hold_s`)."""
    found = _pending.get(producer)
    if found is None:
        found = _pending[producer] = PendingRecords(producer, hold_s)
    return found


async def submit_pending(producer: Any) -> None:
    """Hand `producer` every record held for it (before it is flushed)."""
    found = _pending.get(producer)
    if found is not None:
        await found.submit()


async def _send_batches(
    producer: Any, topic: str, partition: int, records: Iterable[tuple[bytes, bytes | None]]
) -> list[asyncio.Future[Any]]:
    """`records` (key, value) onto one partition as whole record batches, in order; the
    batches' futures. A producer other than Faust's aiokafka one (the stage tests'
    capturing producer) gets one `send` per record."""
    kafka = faust_internals.kafka_producer(producer)
    if kafka is None:
        return [
            await producer.send(topic, key, value, partition, None, None) for key, value in records
        ]
    sent = []
    builder = kafka.create_batch()
    for key, value in records:
        if builder.append(key=key, value=value, timestamp=None) is None:
            # Full: queue it, and start the next batch with this record.
            sent.append(await kafka.send_batch(builder, topic, partition=partition))
            builder = kafka.create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"{topic}: a record of {len(value or b'')} bytes exceeds a batch")
    sent.append(await kafka.send_batch(builder, topic, partition=partition))
    for future in sent:
        _watch(future, topic)
    return sent


def _written(sent: asyncio.Future[Any], *, callback: Written) -> None:
    if sent.cancelled() or sent.exception() is not None:
        return  # reported by _failed
    callback(sent.result().offset)
