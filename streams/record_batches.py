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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from logic.partitioning import partition_of
from streams import faust_internals

log = logging.getLogger("clarion.record_batches")

Record = tuple[int, bytes, bytes]  # (partition, key, value)
Headers = Sequence[tuple[str, bytes]]
Outgoing = tuple[bytes | None, bytes | None, Headers]  # (key, value, headers) on one partition
# aiokafka's (Cython) batch builder takes headers as a list only; this one is never changed.
_NO_HEADERS: Headers = []


async def send_records(producer: Any, topic: str, records: Iterable[Record]) -> None:
    """Send `records` to `topic`, each to its own partition, in their order per partition."""
    by_partition: dict[int, list[Outgoing]] = {}
    for partition, key, value in records:
        by_partition.setdefault(partition, []).append((key, value, _NO_HEADERS))
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


class SubmitFailed(RuntimeError):
    """Records a submit had taken never reached the producer: no later commit may pass the
    events that wrote them."""


class _Submits:
    """Submits run one at a time (a partition's batches reach the producer in the order
    their records were added). A submit that fails has already taken its records out of the
    buffer, so they are lost to the producer: from then on every submit raises, and with it
    the producer's flush that Faust awaits before each commit, so the worker stops rather
    than commit past them, and the events are read again after the restart."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._scheduled = False
        self._failed: BaseException | None = None

    def _start_submit(self) -> None:
        task = asyncio.get_running_loop().create_task(self.submit())
        _tasks.add(task)
        task.add_done_callback(_submitted)

    async def submit(self) -> None:
        """Hand every held record to the producer; returns once they are in its buffer."""
        async with self._lock:
            if self._failed is not None:
                raise SubmitFailed("an earlier submit lost its records") from self._failed
            self._scheduled = False
            try:
                await self._submit_held()
            except Exception as exc:
                self._failed = exc
                raise SubmitFailed(f"records not handed to the producer: {exc!r}") from exc

    async def _submit_held(self) -> None:
        raise NotImplementedError


def _submitted(task: asyncio.Task[None]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s (the next commit will fail)", task.exception())


class PendingRecords(_Submits):
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
        super().__init__()
        self._producer = producer
        self._hold_s = hold_s
        self._held: dict[tuple[str, int], dict[bytes, bytes | None]] = {}
        self._on_written: dict[tuple[str, int], Written] = {}

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

    async def _submit_held(self) -> None:
        held, self._held = self._held, {}
        on_written, self._on_written = self._on_written, {}
        for (topic, partition), records in held.items():
            callback = on_written[(topic, partition)]
            items = ((k, v, _NO_HEADERS) for k, v in records.items())
            batches = await _send_batches(self._producer, topic, partition, items)
            for sent in batches:
                sent.add_done_callback(functools.partial(_written, callback=callback))


# -- records sent at the end of the loop's turn -------------------------------------------------


class OutgoingRecords(_Submits):
    """Topic records (deliveries, receipts) handed to the producer as whole batches once the
    event loop's current turn is over: every record sent while the stages ran in that turn
    (an agent handles many buffered events without yielding) goes in one batch per
    partition, instead of through Faust's `send` (a FutureMessage, a PendingMessage and a
    future per record; in the full-pipeline benchmark about a tenth of the worker's CPU).
    Nothing waits to fill a batch: the submit is the next thing the loop runs.

    Every record is kept, in order (unlike `PendingRecords`). `add` returns a future that
    resolves once the broker has the record's batch. The producer's flush submits whatever
    is left first, so a commit never passes an event whose records are still here."""

    def __init__(self, producer: Any) -> None:
        super().__init__()
        self._producer = producer
        self._held: dict[tuple[str, int], list[Outgoing]] = {}
        self._done: dict[tuple[str, int], asyncio.Future[None]] = {}

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = _NO_HEADERS,
    ) -> asyncio.Future[None]:
        tp = (topic, partition)
        held = self._held.get(tp)
        if held is None:
            held = self._held[tp] = []
            done = self._done[tp] = asyncio.get_running_loop().create_future()
            done.add_done_callback(_retrieved)
        else:
            done = self._done[tp]
        held.append((key, value, headers))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_submit)
        return done

    async def _submit_held(self) -> None:
        held, self._held = self._held, {}
        done, self._done = self._done, {}
        failed: Exception | None = None
        for (topic, partition), records in held.items():
            future = done[(topic, partition)]
            try:
                batches = await _send_batches(self._producer, topic, partition, records)
            except Exception as exc:  # the records of every partition are still answered
                future.set_exception(exc)
                failed = failed or exc
                continue
            _when_all(batches, future)
        if failed is not None:
            raise failed


def _when_all(batches: list[asyncio.Future[Any]], done: asyncio.Future[None]) -> None:
    """Resolve `done` once every batch is written (with the first failure, if one fails)."""
    left = len(batches)

    def _one(sent: asyncio.Future[Any]) -> None:
        nonlocal left
        if done.done():
            return
        if sent.cancelled() or sent.exception() is not None:
            done.set_exception(sent.exception() or asyncio.CancelledError())
            return
        left -= 1
        if left == 0:
            done.set_result(None)

    for sent in batches:
        sent.add_done_callback(_one)


def _retrieved(done: asyncio.Future[None]) -> None:
    # A failed batch is logged by _failed; callers that never await the future (a stage
    # that does not wait for the broker) must not make asyncio report it again.
    if not done.cancelled():
        done.exception()


_outgoing: weakref.WeakKeyDictionary[Any, OutgoingRecords] = weakref.WeakKeyDictionary()


def send_soon(
    topic: Any, key: bytes, value: Any, headers: Headers = _NO_HEADERS
) -> asyncio.Future[None]:
    """`topic.send(key=key, value=value, headers=headers)` through the end-of-turn batch:
    the value encoded by the topic's codec, to the partition Faust's producer would pick
    for the key (murmur2 over the raw user-id key). The future resolves once the broker
    has it."""
    raw, _ = topic.prepare_value(value, None)
    partition = partition_of(key.decode(), topic.partitions)
    return outgoing(topic.app.producer).add(topic.get_topic_name(), partition, key, raw, headers)


def outgoing(producer: Any) -> OutgoingRecords:
    """The end-of-turn batch of `producer` (one per producer, made on first use)."""
    found = _outgoing.get(producer)
    if found is None:
        found = _outgoing[producer] = OutgoingRecords(producer)
    return found


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
    sending = _outgoing.get(producer)
    if sending is not None:
        await sending.submit()
    found = _pending.get(producer)
    if found is not None:
        await found.submit()


async def _send_batches(
    producer: Any, topic: str, partition: int, records: Iterable[Outgoing]
) -> list[asyncio.Future[Any]]:
    """`records` (key, value, headers) onto one partition as whole record batches, in order;
    the batches' futures. A producer other than Faust's aiokafka one (the stage tests'
    capturing producer) gets one `send` per record."""
    kafka = faust_internals.kafka_producer(producer)
    if kafka is None:
        return [
            await producer.send(topic, key, value, partition, None, list(headers))
            for key, value, headers in records
        ]
    sent = []
    builder = kafka.create_batch()
    for key, value, given in records:
        headers = given if isinstance(given, list) else list(given)
        if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            # Full: queue it, and start the next batch with this record.
            sent.append(await kafka.send_batch(builder, topic, partition=partition))
            builder = kafka.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"{topic}: a record of {len(value or b'')} bytes exceeds a batch")
    sent.append(await kafka.send_batch(builder, topic, partition=partition))
    for future in sent:
        _watch(future, topic)
    return sent


def _written(sent: asyncio.Future[Any], *, callback: Written) -> None:
    if sent.cancelled() or sent.exception() is not None:
        return  # reported by _failed
    callback(sent.result().offset)
