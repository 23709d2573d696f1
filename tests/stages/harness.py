"""Run one stage's agent in-process, on an app built by `build_app`, with no broker.

    app = build_app(settings, store="memory://", providers=...)
    stage = StageHarness(app)
    async with stage.run("route.critical") as route:
        await route.put(notification, key=b"alice")
    stage.sent(topics.deliveries[(Channel.PUSH, Lane.CRITICAL)])  # -> [Record, ...]

What is real and what stands in for Kafka:

- **The agent** is the app's own, driven through Faust's `agent.test_context()`: a clone of
  the agent reading an in-memory channel instead of its topic. The channel here decodes
  with the topic's own codec (`WireChannel`), so a test puts a record's bytes, or a model
  that is encoded first, and the stage gets what it would get from Kafka: `message.value`
  holds the bytes (a dead letter copies them) and `event.value` the decoded model.
  Each record gets the next offset of its partition (the recipient's murmur2 partition
  unless given) and a timestamp (now unless given), which is what windows use for time.
- **Done** means acked: `put` returns once Faust has acked the record, i.e. once the stage
  says the commit may pass it (a plain agent acks when it asks for the next record; the
  provider sinks ack from their ack window when the send and its outcome are written), and
  then flushes the producer, as that commit would: held changelog records go out.
  `test_context().put(wait=True)` is not used: for an agent that yields nothing it returns
  as soon as the record is taken from the channel, before it is processed.
- **What the stage produces** goes through the app's real topic objects and codecs to
  `CapturingProducer`, set as the app's producer. It keeps every record as it would reach
  the broker (topic, partition, key and value bytes, headers) and acknowledges it at once,
  as a broker that takes everything. Table writes' changelog records land there too.
- **Tables** use Faust's `memory://` store (`build_app(..., store="memory://")`), read
  and written by the stage through the table API as in a worker. Outside a running worker
  Faust still needs the current event for a write (the changelog partition is the
  record's): the agent's own iteration sets it, so nothing is patched for tables. Tests
  fill a table the way a restore from its changelog does, by writing its store
  (`StageHarness.seed`), not through another agent.
- **The log positions** the digest's cutoff and bulk shedding read come from
  `consumer.highwater(tp)`. The app's consumer is built but never started (starting it
  would contact Kafka), so its `highwater` is replaced on that one instance by this
  harness's in-memory log: the end offset of each partition is the number of records put
  there, plus what `behind()` adds to stand for records not read yet.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka import TopicPartition as AioTP
from faust.channels import SerializedChannel
from faust.serializers import codecs
from faust.types import TP, EventT, Message
from faust.types.tuples import FutureMessage, RecordMetadata
from pydantic import BaseModel

from logic.partitioning import partition_of
from streams import record_batches
from streams.app import ClarionApp
from streams.catalog import all_topics
from streams.topic_loader import TopicLoader, as_message, loaders_of
from tests.stages.inputs import consumer_record

SETTLE_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Record:
    """One record a stage produced, as the broker would have it."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)

    def json(self) -> Any:
        assert self.value is not None, f"tombstone on {self.topic}"
        return json.loads(self.value)

    def header(self, name: str) -> str:
        return self.headers[name].decode()


class CapturingProducer:
    """The app's producer in the stage tests: keeps what is sent, acknowledges it at once.

    Implements the part of Faust's ProducerT the app uses: `send` / `send_and_wait` (topic
    sends), `send_soon` (table changelogs), `key_partition`, the start/flush calls and the
    buffer's `wait_until_ebb` (nothing is buffered here: every send is kept at once)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.records: list[Record] = []
        self._next_offset: dict[TP, int] = {}
        self.buffer = self

    async def wait_until_ebb(self) -> None:
        pass

    def _partition(self, key: bytes | None, partition: int | None) -> int:
        if partition is not None:
            return partition
        # The default partitioner: murmur2 over the key bytes (logic/partitioning.py).
        return partition_of((key or b"").decode(), self.partitions)

    def _append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> RecordMetadata:
        p = self._partition(key, partition)
        tp = TP(topic, p)
        offset = self._next_offset.get(tp, 0)
        self._next_offset[tp] = offset + 1
        pairs = headers.items() if isinstance(headers, dict) else (headers or [])
        self.records.append(Record(topic, p, key, value, {k: bytes(v) for k, v in pairs}))
        return RecordMetadata(topic, p, tp, offset, timestamp)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        done: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        done.set_result(self._append(topic, key, value, partition, timestamp, headers))
        return done

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> RecordMetadata:
        return await (await self.send(*args, **kwargs))

    def send_soon(self, fut: FutureMessage) -> None:
        m = fut.message
        topic = m.channel.get_topic_name()  # type: ignore[attr-defined]
        meta = self._append(topic, m.key, m.value, m.partition, m.timestamp, m.headers)
        fut.set_result(meta)
        if m.callback:
            m.callback(fut)

    def key_partition(self, topic: str, key: bytes) -> TP:
        return TP(topic, self._partition(key, None))

    async def maybe_start(self) -> None:
        pass

    async def flush(self) -> None:
        # As the worker's producer does (streams/consumer.py: ClarionProducer).
        await record_batches.submit_pending(self)


class WireChannel(SerializedChannel):  # type: ignore[misc]
    """An in-memory channel that decodes records with `topic`'s schema and error hooks, as
    the topic does for records from Kafka (a plain channel would hand the bytes through)."""

    def __init__(self, app: faust.App, *, topic: faust.TopicT, **kwargs: Any) -> None:
        kwargs.setdefault("schema", topic.schema)
        super().__init__(app, **kwargs)
        self.topic = topic

    def _clone_args(self) -> dict[str, Any]:
        return {**super()._clone_args(), "topic": self.topic}

    async def decode(self, message: Message, *, propagate: bool = False) -> EventT:
        return await self.topic.decode(message, propagate=propagate)  # type: ignore[no-any-return]


class StageDriver:
    """One agent running in-process; `put` hands it a record and waits until it is acked."""

    def __init__(self, harness: StageHarness, wrapper: Any, topic: faust.TopicT) -> None:
        self.harness, self.wrapper, self.topic = harness, wrapper, topic

    @property
    def topic_name(self) -> str:
        return str(self.topic.get_topic_name())

    async def put(
        self,
        value: BaseModel | bytes | Any,
        *,
        key: bytes | str | None = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: dict[str, bytes] | None = None,
        wait: bool = True,
    ) -> EventT:
        """Put a record on the agent's partition as Kafka would hand it over. A model (or
        any non-bytes value) is encoded with the topic's codec first."""
        key, partition, offset = self.harness.place(self.topic_name, key, partition)
        raw = (
            value if isinstance(value, bytes) else codecs.dumps(self.topic.value_serializer, value)
        )
        message = self.wrapper.to_message(
            key, raw, partition=partition, offset=offset, timestamp=timestamp, headers=headers
        )
        channel = self.wrapper.stream().channel
        event: EventT = await channel.decode(message)
        await channel.put(event)
        if wait:
            await self.settle([event])
        return event

    async def settle(self, events: Iterable[EventT]) -> None:
        """Wait until every event is acked (the stage is done with it), then flush the
        producer, as the commit that follows in a worker does: the table changelog records
        the stage held back (tables/changelog.py) are then in `sent` too."""
        pending = list(events)
        deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
        while not all(e.message.acked for e in pending):
            if self.wrapper._crash_reason is not None:
                raise self.wrapper._crash_reason
            if asyncio.get_running_loop().time() > deadline:
                offsets = [e.message.offset for e in pending if not e.message.acked]
                raise TimeoutError(f"{self.wrapper.name}: offsets {offsets} not acked")
            await asyncio.sleep(0.005)
        await self.harness.producer.flush()


class LoaderDriver:
    """A topic loader (streams/topic_loader.py) fed records in-process: `put` hands one to
    its `apply` as a fetched batch of one, and waits until the loader counts it done (its
    window acked it, for a sink with one), then flushes the producer as its commit would."""

    def __init__(self, harness: StageHarness, loader: TopicLoader) -> None:
        self.harness, self.loader = harness, loader
        [self.topic_name] = loader.topics

    async def put(
        self,
        value: BaseModel | bytes | Any,
        *,
        key: bytes | str | None = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: dict[str, bytes] | None = None,
        wait: bool = True,
    ) -> Any:
        key, partition, offset = self.harness.place(self.topic_name, key, partition)
        raw = value if isinstance(value, bytes) else value.model_dump_json().encode()
        record = consumer_record(
            self.topic_name, offset, key, raw, partition=partition, headers=headers,
            timestamp_ms=int((time.time() if timestamp is None else timestamp) * 1000),
        )  # fmt: skip
        applied = self.loader.apply(partition, [record])
        if inspect.isawaitable(applied):
            applied = await applied
        for sent in applied:
            await sent
        event = SimpleNamespace(message=as_message(record), record=record)
        if wait:
            await self.settle([event])
        return event

    def is_done(self, event: Any) -> bool:
        """Whether the loader counts the record done (its offset may be committed)."""
        r = event.record
        applied = self.loader._applied.get(AioTP(r.topic, r.partition), 0)
        return self.loader.window is None or applied > r.offset

    async def settle(self, events: Iterable[Any]) -> None:
        """Wait until the loader counts every record done, then flush the producer."""
        pending = list(events)
        deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
        while not all(self.is_done(e) for e in pending):
            if asyncio.get_running_loop().time() > deadline:
                offsets = [e.record.offset for e in pending]
                raise TimeoutError(f"{self.loader}: offsets {offsets} not done")
            await asyncio.sleep(0.005)
        await self.harness.producer.flush()

    async def stop(self) -> None:
        """Let the window's sends end (they would run on after the test otherwise)."""
        await self.loader._drain()


class MemoryLog:
    """End offsets of the partitions records were put on (what the broker's highwater is)."""

    def __init__(self) -> None:
        self.end: dict[TP, int] = {}
        self.unread: dict[TP, int] = {}

    def append(self, tp: TP) -> int:
        offset = self.end.get(tp, 0)
        self.end[tp] = offset + 1
        return offset

    def highwater(self, tp: TP) -> int:
        return self.end.get(tp, 0) + self.unread.get(tp, 0)


class StageHarness:
    """An app built with `build_app` made to run its stages in-process (see the module doc)."""

    def __init__(self, app: ClarionApp) -> None:
        self.app = app
        self.ctx = app.ctx
        self.partitions = app.settings.partitions
        self.producer = CapturingProducer(self.partitions)
        app.producer = self.producer
        self.log = MemoryLog()
        # The one thing taken from the unstarted consumer (see the module doc).
        app.consumer.highwater = self.log.highwater
        # What the last `rebalance` assigned (nothing until one is asked for).
        self.assigned: set[TP] = set()

    # -- tables ------------------------------------------------------------------------
    def seed(self, table: faust.Table, key: bytes | str, value: Any) -> None:
        """Put a row in a table's store, as a restore from its changelog does."""
        if isinstance(key, str):
            key = key.encode()
        table.data[key] = value

    # -- the log -------------------------------------------------------------------------
    def place(
        self, topic: str, key: bytes | str | None, partition: int | None
    ) -> tuple[bytes | None, int, int]:
        """Where a record put on `topic` lands: its key as bytes, its partition (the key's
        murmur2 partition unless given) and the next offset there."""
        if isinstance(key, str):
            key = key.encode()
        if partition is None:
            partition = partition_of((key or b"").decode(), self.partitions)
        return key, partition, self.log.append(TP(topic, partition))

    def behind(self, topic: faust.TopicT | str, partition: int, records: int) -> None:
        """Make `records` more records sit in the partition, not read yet (a backlog)."""
        tp = TP(_name(topic), partition)
        self.log.unread[tp] = self.log.unread.get(tp, 0) + records

    def caught_up(self, topic: faust.TopicT | str, partition: int) -> None:
        self.log.unread.pop(TP(_name(topic), partition), None)

    # -- the assignment ------------------------------------------------------------------
    async def rebalance(self, partitions: Iterable[int]) -> None:
        """A rebalance as Faust signals it (eager): every partition revoked, then the new
        assignment, here the given partition numbers of every user-keyed catalog topic (the
        assignor gives a worker the same numbers of all of them). Only the services that
        follow the signals see it: the in-memory channels are not consumers."""
        settings = self.app.settings
        await self.app.on_partitions_revoked.send(self.assigned)
        self.assigned = {
            TP(settings.topic(spec.name), p)
            for spec in all_topics()
            if spec.partitions is None
            for p in partitions
        }
        await self.app.on_partitions_assigned.send(self.assigned)

    async def assign(self, partitions: Iterable[int]) -> None:
        """Only the assignment half of `rebalance` (the services that follow it see it)."""
        settings = self.app.settings
        self.assigned = {
            TP(settings.topic(spec.name), p)
            for spec in all_topics()
            if spec.partitions is None
            for p in partitions
        }
        await self.app.on_partitions_assigned.send(self.assigned)

    # -- what the stages produced ----------------------------------------------------------
    def sent(self, *topics: faust.TopicT | str, key: bytes | str | None = None) -> list[Record]:
        names = {_name(t) for t in topics}
        if isinstance(key, str):
            key = key.encode()
        return [
            r
            for r in self.producer.records
            if (not names or r.topic in names) and (key is None or r.key == key)
        ]

    def clear(self) -> None:
        self.producer.records.clear()

    @asynccontextmanager
    async def run(self, agent_name: str) -> AsyncIterator[StageDriver | LoaderDriver]:
        """The app's agent `agent_name` running on an in-memory copy of its topic, or the
        topic loader of that name (the provider sinks: `sink.<channel>.<lane>`) fed
        records directly."""
        loaders = [lo for lo in loaders_of(self.app) if lo.name == agent_name]
        if loaders:
            driver = LoaderDriver(self, loaders[0])
            try:
                yield driver
            finally:
                await driver.stop()
            return
        agent = self.app.agents[agent_name]
        topic = agent.channel
        async with agent.test_context(channel=WireChannel(self.app, topic=topic)) as wrapper:
            yield StageDriver(self, wrapper, topic)


def _name(topic: faust.TopicT | str) -> str:
    return topic if isinstance(topic, str) else str(topic.get_topic_name())
