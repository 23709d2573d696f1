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
the event is acked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from streams import faust_internals

log = logging.getLogger("clarion.record_batches")

Record = tuple[int, bytes, bytes]  # (partition, key, value)


async def send_records(producer: Any, topic: str, records: Iterable[Record]) -> int:
    """Send `records` to `topic`, each to its own partition; returns how many were sent.

    A producer other than Faust's aiokafka one (the stage tests' capturing producer) gets
    one `send` per record: the same records, in the same order per partition."""
    kafka = faust_internals.kafka_producer(producer)
    if kafka is None:
        count = 0
        for partition, key, value in records:
            await producer.send(topic, key, value, partition, None, None)
            count += 1
        return count
    builders: dict[int, Any] = {}
    count = 0
    for partition, key, value in records:
        builder = builders.get(partition)
        if builder is None:
            builder = builders[partition] = kafka.create_batch()
        if builder.append(key=key, value=value, timestamp=None) is None:
            # Full: queue it, and start the partition's next batch with this record.
            _watch(await kafka.send_batch(builder, topic, partition=partition), topic)
            builder = builders[partition] = kafka.create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"{topic}: a record of {len(value)} bytes exceeds a batch")
        count += 1
    for partition, builder in builders.items():
        _watch(await kafka.send_batch(builder, topic, partition=partition), topic)
    return count


def _watch(sent: asyncio.Future[Any], topic: str) -> None:
    sent.add_done_callback(lambda f: _failed(f, topic))


def _failed(sent: asyncio.Future[Any], topic: str) -> None:
    # aiokafka retries a batch until the producer's request timeout; a batch that still
    # fails is reported here (Faust's own sends and tables/changelog.py are no stricter).
    if not sent.cancelled() and sent.exception() is not None:
        log.error("%s: a record batch was not written: %r", topic, sent.exception())
