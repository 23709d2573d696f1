"""Topics read in batches, outside Faust's streams, on the partitions of a table this worker
owns (Kafka Streams' "source table", and sinks that only need their records in order).

A Faust agent pays Faust's per-record machinery on every record it reads (about 125 µs of
CPU on this machine, the bare Faust hop in benchmarks/RESULTS.md), which caps any agent
that reads one record at a time at a few thousand records a second, and every topic it
subscribes adds partitions to the one fetch loop that feeds all agents. A topic whose
records need no more than "in order, on the owner of the partition" needs none of it: the
compacted `follows` topic that feeds the follow graph, and the delivery topics of the
in-app sink and the outbox. Here a plain aiokafka consumer reads the topics' partitions
whose table partition this worker owns and hands each fetched batch of one partition to
`apply` (sync, or async for a sink).

Ownership and order:
- A loader reads partition p only while this worker owns partition p of its table (Faust's
  assignor puts the table's changelog partition p with the co-partitioned source
  partitions), and never while Faust rebalances or restores a table (between
  `app.on_rebalance_start` and the end of recovery, `app.rebalancing`): a restore writes
  the same rows, and a row of an older record written after it would undo a newer one.
- A fetched batch is applied only if the assignment it was fetched under still holds. A
  synchronous `apply` (the graph) runs with no await after that check. An async one (a
  sink) may still be running when Faust revokes: the loader's receiver of
  `app.on_partitions_revoked` waits for the batch to end and flushes the producer before
  Faust goes on to hand the partitions over, as Faust waits for its own streams.
- `apply` runs each record as Faust's current event (`as_current_event`), so the code it
  calls writes and reads the tables of the record's partition as it does in an agent.

Sends that take a provider's round trip (the provider sinks, sinks/deliver.py) do not hold
up the next fetch: with a `window` (logic/ackwindow.AckWindow) `apply` hands each record's
work to it, at most its limit at once, and a record counts as applied (its offset may be
committed) only once its work and that of every earlier record of its partition are done
(`done`). Revocation waits for the window to drain, as Faust waits for an agent's acks.

Progress is the loader's own consumer group (`group_id`, offsets committed, never joined):
an offset is committed only after `apply`'s returned awaitables (receipts, dead letters)
are done and the producer has flushed the changelog records of every record before it, so
a crash reads the rest again. Reading again is harmless: a graph record sets its key's row
again in the topic's order, and a sink finds its earlier delivery (the inbox's `contains`)
and re-sends only the receipt, as a redelivered agent record did.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from faust.types import Message
from mode import Service

from logic.ackwindow import AckWindow
from logic.lag import PartitionOffsets
from streams import faust_internals, metrics

if TYPE_CHECKING:
    import faust

log = logging.getLogger("clarion.topic_loader")

# Applies one fetched batch of one partition and returns what must be awaited before the
# batch's offsets may be committed (receipts, dead letters); sync (no await: the graph) or
# async (a sink).
Apply = Callable[
    [int, Sequence[ConsumerRecord]], list[Awaitable[Any]] | Awaitable[list[Awaitable[Any]]]
]

# (consumer generation, owned partitions), or None while Faust rebalances or restores.
Ownership = tuple[int, frozenset[int]] | None

# Every loader of an app (the consumer lag on /metrics includes theirs).
_LOADERS: weakref.WeakKeyDictionary[Any, list[TopicLoader]] = weakref.WeakKeyDictionary()


IDLE_FETCH_WAIT_MS = 2_000


def loaders_of(app: Any) -> list[TopicLoader]:
    return list(_LOADERS.get(app, ()))


class TopicLoader(Service):  # type: ignore[misc]
    """Reads `topics` through `apply`, on the partitions of `table` this worker owns."""

    def __init__(
        self,
        app: faust.App,
        *,
        topics: Sequence[str],
        table: Any,
        apply: Apply,
        group_id: str,
        bootstrap_servers: str,
        commit_interval_s: float = 1.0,
        max_records: int = 10_000,
        window: AckWindow[ConsumerRecord] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.app = app
        self.topics = list(topics)
        self.window = window  # records acked out of `apply`, in order (`done`)
        self.name = name or ",".join(self.topics)
        self.table = table
        self._changelog: str = table.changelog_topic.get_topic_name()
        self.apply = apply
        self.group_id = group_id
        self.bootstrap_servers = bootstrap_servers
        self.commit_interval_s = commit_interval_s
        self.max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._reading: Ownership = None  # the ownership the consumer is positioned for
        self._applied: dict[TopicPartition, int] = {}  # next offset, applied not committed
        self._next: dict[TopicPartition, int] = {}  # next offset to apply (for the lag)
        self._committed: dict[TopicPartition, int] = {}
        self._positioned = False  # `_next` holds every owned partition's position
        self._last_commit = time.monotonic()
        self._between_batches = asyncio.Event()
        self._between_batches.set()
        _LOADERS.setdefault(app, []).append(self)
        app.on_partitions_revoked.connect(self._on_revoked)

    def owned(self) -> Ownership:
        """The table partitions this worker owns now, or None while that is changing."""
        app = self.app
        if app.rebalancing:
            return None
        partitions = faust_internals.active_partitions(app, self._changelog)
        return app.consumer_generation_id, partitions

    def offsets(self) -> list[PartitionOffsets]:
        """Highwater and committed offset of each partition it owns (the consumer lag; both
        None, i.e. no lag reported, until the partition's first batch or commit)."""
        consumer, owned = self._consumer, self.owned()
        if consumer is None or owned is None:
            return []
        reading = self._reading == owned
        rows = []
        for topic in self.topics:
            for partition in sorted(owned[1]):
                tp = TopicPartition(topic, partition)
                done = self._committed.get(tp, self._next.get(tp))
                highwater = consumer.highwater(tp) if reading and done is not None else None
                rows.append(PartitionOffsets(topic, partition, highwater, done))
        return rows

    def reads(self, topic: str, partition: int) -> bool:
        """Whether this loader reads `topic`'s `partition` on this worker now."""
        owned = self.owned()
        return owned is not None and topic in self.topics and partition in owned[1]

    def caught_up(self, topic: str, partition: int) -> bool:
        """Whether every record of the partition the broker has is applied (what lets a
        window close by the wall clock: streams/positions.py). False while ownership is
        changing or before the partition's position and highwater are known."""
        owned, consumer = self.owned(), self._consumer
        if owned is None or consumer is None or self._reading != owned or not self._positioned:
            return False
        tp = TopicPartition(topic, partition)
        next_offset, highwater = self._next.get(tp), consumer.highwater(tp)
        return next_offset is not None and highwater is not None and next_offset >= highwater

    def position(self, topic: str, partition: int) -> tuple[int | None, int | None, int | None]:
        """(next offset to apply, committed offset, highwater) of a partition, for logs."""
        tp = TopicPartition(topic, partition)
        consumer = self._consumer
        highwater = consumer.highwater(tp) if consumer is not None and self._reading else None
        return self._next.get(tp), self._committed.get(tp), highwater

    async def _on_revoked(self, sender: Any, /, *args: Any, **kwargs: Any) -> None:
        # Sent by Faust during revocation, after its own streams emptied and before the
        # partitions go to another worker: let the batch in progress end, hand its records
        # (changelog, receipts) to the broker, as Faust did for its streams, and commit what
        # was applied, so that the next owner does not read it again (as Faust commits its
        # streams' offsets here).
        reading, self._reading = self._reading, None
        await self.settled()
        if reading is not None and self._applied:
            try:
                await self._commit_applied()
            except Exception:  # the next owner reads from the last commit: only slower
                log.exception("%s: commit at revocation failed", self)

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,  # for its committed offsets only: never subscribes
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # An idle loader's fetch loop (a worker has ~25 loaders) asks the broker less
            # often. A fetch still returns at the first record on a partition it asks for
            # (fetch_min_bytes 1), and aiokafka cancels fetches in flight when the assignment
            # changes; only a partition left out of the fetch in flight (its earlier records
            # not yet taken) waits for it. The latency benchmark shows no difference from
            # 0.5 s (benchmarks/RESULTS.md).
            fetch_max_wait_ms=IDLE_FETCH_WAIT_MS,
        )
        await self._consumer.start()

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @Service.task
    async def _load(self) -> None:
        while not self.should_stop:
            try:
                await self._step()
            except Exception:
                # A broker error or a failed commit: start again from the last commit.
                log.exception("%s: loading failed; reading again from the last commit", self)
                self._reading = None
                await self._drain()  # no ack of the old positions after the new ones
                await self.sleep(1.0)

    def __str__(self) -> str:
        return self.name

    def done(self, record: ConsumerRecord) -> None:
        """The window's ack: `record`, and every record before it in its partition, is
        finished, so the commit may pass it."""
        self._applied[TopicPartition(record.topic, record.partition)] = record.offset + 1

    async def settled(self) -> None:
        """Wait for the batch in progress and every record's work in the window."""
        await self._between_batches.wait()
        await self._drain()

    async def _drain(self) -> None:
        if self.window is not None:
            await self.window.drain()

    async def _step(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        owned = self.owned()
        if owned is None:
            self._reading = None  # positions are re-read from the commits afterwards
            await self.sleep(0.1)
            return
        if owned != self._reading:
            await self._position(owned)
            return
        if not owned[1]:
            await self.sleep(0.5)
            return
        fetched = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
        if self.owned() != owned or self._reading != owned:
            return  # fetched under an assignment that no longer holds: dropped, read again
        waits: list[Awaitable[Any]] = []
        self._between_batches.clear()
        try:
            for tp, records in fetched.items():
                if records:
                    applied = self.apply(tp.partition, records)
                    if inspect.isawaitable(applied):
                        applied = await applied
                    waits.extend(applied)
                    self._next[tp] = records[-1].offset + 1
                    if self.window is None:  # else the window acks them (`done`)
                        self._applied[tp] = self._next[tp]
                    metrics.child(metrics.topic_loader_records, tp.topic).inc(len(records))
            for wait in waits:
                await wait
        finally:
            self._between_batches.set()
        self._report_lag()
        if self._applied and time.monotonic() - self._last_commit >= self.commit_interval_s:
            await self._commit(owned)

    def _report_lag(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        behind: dict[str, int] = dict.fromkeys(self.topics, 0)
        for tp, next_offset in self._next.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                behind[tp.topic] += max(highwater - next_offset, 0)
        for topic, records in behind.items():
            metrics.child(metrics.topic_loader_lag, topic).set(records)

    async def _position(self, owned: tuple[int, frozenset[int]]) -> None:
        """Read the owned partitions from their last committed offsets (aiokafka positions
        a manually assigned partition at its group's committed offset, fetched for all of
        them at once, or at the log's start if there is none)."""
        consumer = self._consumer
        assert consumer is not None
        tps = [TopicPartition(t, p) for t in self.topics for p in sorted(owned[1])]
        consumer.assign(tps)
        self._applied, self._next, self._committed = {}, {}, {}
        self._positioned = False
        # Where each partition resumes (its committed offset, or the log's start): known
        # before the first record, so an idle partition counts as caught up.
        for tp in tps:
            self._next[tp] = await consumer.position(tp)
            if self.owned() != owned:
                return
        self._positioned = True
        if self.owned() == owned:
            self._reading = owned
            log.info("%s: reading partitions %s", self, sorted(owned[1]) or "none")

    async def _commit(self, owned: tuple[int, frozenset[int]]) -> None:
        """Commit what was applied, once its changelog records are with the broker."""
        if self.owned() != owned or self._reading != owned:
            return  # another worker may own them now: it reads from the last commit
        await self._commit_applied(owned)

    async def _commit_applied(self, owned: tuple[int, frozenset[int]] | None = None) -> None:
        """Flush the producer, then commit the applied offsets (if `owned` is given: only
        if it still holds after the flush)."""
        consumer = self._consumer
        assert consumer is not None
        applied = dict(self._applied)
        await self.app.producer.flush()  # the changelog records held behind, then the rest
        if owned is not None and (self.owned() != owned or self._reading != owned):
            return
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in applied.items()})
        self._committed.update(applied)
        for tp, offset in applied.items():
            if self._applied.get(tp) == offset:
                del self._applied[tp]
        self._last_commit = time.monotonic()


def as_message(record: ConsumerRecord) -> Message:
    """A Faust message for a record a loader read (what a dead letter is made of)."""
    return Message(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp / 1000,
        record.timestamp_type,
        list(record.headers or ()),
        record.key,
        record.value,
        None,
    )


class _RecordEvent:
    """What code that reads Faust's current event uses of it (`message`, `headers`), for a
    record a loader read."""

    __slots__ = ("__weakref__", "headers", "message")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.headers = message.headers


def record_event(message: Message) -> Any:
    """The stand-in for Faust's event of `message` that `as_current_event` makes current."""
    return _RecordEvent(message)


def as_current_event(
    message: Message, event: Any = None
) -> contextlib.AbstractContextManager[None]:
    """Run code as if Faust were processing `message` (`faust.current_event()`): table
    writes and lookups go to its partition, as in an agent. Faust keeps only a weak
    reference to the current event: a task started in the block and running on after it
    needs `event` (`record_event(message)`) kept alive by its own reference."""
    return faust_internals.current_event_set(event or _RecordEvent(message))


def started_with_the_app(loader: TopicLoader) -> type[Service]:
    """A service class for `app.service`, which starts `loader` with the app (after the
    tables' first recovery) and stops it with the app."""

    class _Started(Service):  # type: ignore[misc]
        async def on_start(self) -> None:
            await self.add_runtime_dependency(loader)

    _Started.__name__ = f"Loader[{loader}]"
    return _Started
