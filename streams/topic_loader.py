"""A table kept in step with a compacted topic that is read in batches, outside Faust's
streams (Kafka Streams' "source table").

A Faust agent pays Faust's per-record machinery on every record it reads (about 125 µs of
CPU on this machine, the bare Faust hop in benchmarks/RESULTS.md), which caps any agent
that reads one record at a time at a few thousand records a second. A compacted topic that
only feeds a table (the follow graph: `follows` -> `followers`) needs none of it: no
event, no ack window, no per-record offset bookkeeping. Here a plain aiokafka consumer reads
the topic's partitions whose table partitions this worker owns, and hands each fetched
batch to `apply`, which writes the rows through tables/changelog.py (row at once,
changelog record written behind).

Ownership and order:
- The loader reads partition p of the topic only while this worker owns partition p of the
  table (Faust's assignor puts the table's changelog partition p with the co-partitioned
  source partitions), and never while Faust rebalances or restores a table (between
  `app.on_rebalance_start` and the end of recovery, `app.rebalancing`): a restore writes
  the same rows from the changelog, and a row of an older record written after it would
  undo a newer one.
- A fetched batch is applied only if the assignment it was fetched under still holds, and
  `apply` runs with no await, so no rebalance can come between the check and the writes.

Progress is the loader's own consumer group (`group_id`, offsets committed, never joined):
an offset is committed only after the producer has flushed the changelog records (and
dead letters) of every record before it, so a crash reads the rest again. Reading again is
harmless: each record sets its key's row, in the topic's order, so the last record of a key
wins again. After a move to another worker, the new owner restores the table from the
changelog and reads the topic from the last commit on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from mode import Service

from streams import metrics

if TYPE_CHECKING:
    import faust

log = logging.getLogger("clarion.topic_loader")

# Writes the rows of one fetched batch of one partition, with no await (see the module
# docstring), and returns what must be awaited before the batch's offsets may be committed
# (the dead letters of records it refused).
Apply = Callable[[int, Sequence[ConsumerRecord]], list[Awaitable[None]]]

# (consumer generation, owned partitions), or None while Faust rebalances or restores.
Ownership = tuple[int, frozenset[int]] | None


class TopicLoader(Service):  # type: ignore[misc]
    """Reads `topic` into `table` through `apply`, on the partitions this worker owns."""

    def __init__(
        self,
        app: faust.App,
        *,
        topic: str,
        table: Any,
        apply: Apply,
        group_id: str,
        bootstrap_servers: str,
        commit_interval_s: float = 1.0,
        max_records: int = 10_000,
    ) -> None:
        super().__init__()
        self.app = app
        self.topic = topic
        self.table = table
        self.apply = apply
        self.group_id = group_id
        self.bootstrap_servers = bootstrap_servers
        self.commit_interval_s = commit_interval_s
        self.max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._reading: Ownership = None  # the ownership the consumer is positioned for
        self._applied: dict[TopicPartition, int] = {}  # next offset, applied not committed
        self._next: dict[TopicPartition, int] = {}  # next offset to apply (for the lag)
        self._last_commit = time.monotonic()
        self.records_applied = 0

    def owned(self) -> Ownership:
        """The table partitions this worker owns now, or None while that is changing."""
        app = self.app
        if app.rebalancing:
            return None
        changelog = self.table.changelog_topic.get_topic_name()
        partitions = frozenset(
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == changelog
        )
        return app.consumer_generation_id, partitions

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,  # for its committed offsets only: never subscribes
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
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
                log.exception("%s: loading failed; reading again from the last commit", self.topic)
                self._reading = None
                await self.sleep(1.0)

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
        if self.owned() != owned:
            return  # fetched under an assignment that no longer holds: dropped, read again
        waits: list[Awaitable[None]] = []
        for tp, records in fetched.items():
            if records:
                waits.extend(self.apply(tp.partition, records))
                self._applied[tp] = self._next[tp] = records[-1].offset + 1
                self.records_applied += len(records)
                metrics.child(metrics.topic_loader_records, self.topic).inc(len(records))
        self._report_lag()
        for wait in waits:
            await wait
        if self._applied and time.monotonic() - self._last_commit >= self.commit_interval_s:
            await self._commit(owned)

    def _report_lag(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        behind = 0
        for tp, next_offset in self._next.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                behind += max(highwater - next_offset, 0)
        metrics.child(metrics.topic_loader_lag, self.topic).set(behind)

    async def _position(self, owned: tuple[int, frozenset[int]]) -> None:
        """Read the owned partitions from their last committed offsets."""
        consumer = self._consumer
        assert consumer is not None
        tps = [TopicPartition(self.topic, p) for p in sorted(owned[1])]
        consumer.assign(tps)
        self._applied, self._next = {}, {}
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
                self._next[tp] = committed
        if self.owned() == owned:
            self._reading = owned
            log.info("%s: reading partitions %s", self.topic, sorted(owned[1]) or "none")

    async def _commit(self, owned: tuple[int, frozenset[int]]) -> None:
        """Commit what was applied, once its changelog records are with the broker."""
        consumer = self._consumer
        assert consumer is not None
        applied = dict(self._applied)
        await self.app.producer.flush()  # the changelog records held behind, then the rest
        if self.owned() != owned:
            return  # another worker may own them now: it reads from the last commit
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in applied.items()})
        for tp, offset in applied.items():
            if self._applied.get(tp) == offset:
                del self._applied[tp]
        self._last_commit = time.monotonic()
