"""Clarion's Kafka consumer: Faust's aiokafka consumer whose commits never pass a record
that was not processed (logic/commits.py says how Faust's own check lets them).

Installed by ClarionApp (streams/clarion_app.py) through its transport. Faust's private
offset bookkeeping is read and written through streams/faust_internals.py (other modules
ask its `committed_offset()`); the two private methods overridden here (`_getmany`,
`_new_offset`) are listed there with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from faust.transport.consumer import ensure_TP
from faust.transport.drivers import aiokafka as _driver
from faust.types import TP, Message
from faust.types.transports import ConsumerT, ProducerT

from logic.commits import CommitFrontier
from streams import faust_internals, record_batches

log = logging.getLogger("clarion.consumer")


class ClarionConsumer(_driver.Consumer):  # type: ignore[misc]
    _frontier: CommitFrontier[TP]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._frontier = CommitFrontier()
        super().__init__(*args, **kwargs)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # Before Faust's handlers stop the flow: from here on, streams skip (and ack) what
        # they pull, and agents finish in-flight records; none of that may be committed.
        self._frontier.revoke(revoked)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self._frontier.assign(assigned, generation_id)
        for tp in assigned:  # acks Faust kept from an earlier assignment are void
            faust_internals.forget_acks(self, tp)
        await super().on_partitions_assigned(assigned, generation_id)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        offsets = await super().seek_to_committed()
        # aiokafka seeks only partitions with a committed offset > 0; one with none keeps its
        # fetch position, past any record a stream skipped (and this consumer refused to
        # count) during the rebalance, which would then never be read again. Nothing
        # committed means nothing is known processed: read it from the start (the
        # auto_offset_reset=earliest the app asks for). Changelogs are left to recovery.
        acks_enabled_for = self.app.topics.acks_enabled_for
        never = [tp for tp, offset in offsets.items() if not offset and acks_enabled_for(tp.topic)]
        if never:
            await faust_internals.seek_to_beginning(self, *never)
        for tp, offset in offsets.items():
            self._frontier.seeked(ensure_TP(tp), offset)
        return offsets  # type: ignore[no-any-return]

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's slow-processing diagnostic: its livelock detector calls it for every
        assigned partition every 2.5 commit intervals, and it only logs. It reads aiokafka's
        position of the partition, and one sought to its beginning by `seek_to_committed`
        has none until aiokafka's offset reset answers: aiokafka asserts on reading it, and
        that AssertionError crashed Faust's consumer and so the worker (seen with three
        workers starting side by side, tests/integration/test_global_pacing.py). Such a
        partition is diagnosed once it has a position."""
        try:
            super().verify_event_path(now, tp)
        except AssertionError:
            log.debug("%s: no fetch position yet (offset reset pending); not checked", tp)

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._frontier.seeked(ensure_TP(partition), offset)

    # Faust's private raw fetch (listed in streams/faust_internals.OVERRIDES); Faust's
    # signature, timeout included.
    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:  # noqa: ASYNC109
        """The raw fetch: tells the frontier which records the client fetched."""
        epochs = self._frontier.epochs()
        generation = self.app.consumer_generation_id
        records = await super()._getmany(active_partitions, timeout)
        acks_enabled_for = self.app.topics.acks_enabled_for
        kept = {}
        for tp, batch in records.items():
            # Only topics whose offsets Faust commits (not table changelogs, which are
            # compacted: their read-past offsets would pile up here, never committed).
            if batch and acks_enabled_for(tp.topic):
                if self._frontier.epoch(tp) != epochs.get(tp):
                    # A seek (or a new assignment) overtook this fetch: where it began is
                    # unknown, and the client's position may now be past it. Read again
                    # from the commit frontier: everything below it is done.
                    if self._frontier.is_live(tp):
                        await self._refetch(tp, self._frontier.start(tp), "a seek overtook")
                    continue
                self._frontier.fetched(tp, [r.offset for r in batch], generation)
            kept[tp] = batch
        return kept

    # Faust's signature, timeout included.
    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109
        for tp, offset in self._frontier.not_handed_on():
            await self._refetch(tp, offset, "a batch ended before")
        acks_enabled_for = self.app.topics.acks_enabled_for
        refetching: set[TP] = set()
        async for tp, message in super().getmany(timeout):
            if acks_enabled_for(message.topic):
                if tp in refetching:
                    continue  # fetched again from an earlier record
                dropped = self._frontier.read(tp, message.offset, message.generation_id)
                if dropped is not None:
                    await self._refetch(tp, dropped, "Faust skipped")
                    refetching.add(tp)
                    continue
            yield tp, message

    async def _refetch(self, tp: TP, offset: int | None, why: str) -> None:
        """Send the client back to `offset` of `tp` (None: the log's start). Always backwards
        of every record not yet processed, so nothing is skipped (logic/commits.py)."""
        log.info("%s: %s handing on records: reading again from %s", tp, why, offset)
        try:
            if offset is None:
                await faust_internals.seek_to_beginning(self, tp)
            else:
                await super().seek(tp, offset)
        except Exception as exc:  # revoked meanwhile: the next assignment seeks it anyway
            log.warning("%s: could not read again from %s: %r", tp, offset, exc)
            return
        self._frontier.refetched(tp, offset)

    def ack(self, message: Message) -> bool:
        flowing = bool(self.app.flow_control.is_active())
        if self._frontier.accepts_ack(message.tp, message.generation_id, flowing):
            return bool(super().ack(message))
        # Not counted (skipped in a rebalance or at shutdown, or from an older assignment):
        # the record will be read again. Marked done so waiting for streams to empty ends.
        faust_internals.mark_done_uncounted(self, message)
        return False

    # Faust's private commit check (listed in streams/faust_internals.OVERRIDES).
    def _new_offset(self, tp: TP) -> int | None:
        acked_index = faust_internals.acked_index(self, tp)
        faust_internals.drop_gap(self, tp)  # Faust's read gaps include the record after the gap
        if not acked_index:
            return None
        offset = self._frontier.advance(tp, acked_index)
        if offset is None:
            return None
        faust_internals.set_acked(self, tp, sorted(o for o in acked_index if o >= offset))
        return offset


class ClarionProducer(_driver.Producer):  # type: ignore[misc]
    """Faust's aiokafka producer, whose flush first hands over the records held back by
    streams/record_batches.py (the table changelogs' write-behind). Faust flushes the
    producer before every offset commit, so no commit passes an event whose changelog
    records are still held."""

    async def flush(self) -> None:
        await record_batches.submit_pending(self)
        await super().flush()


class ClarionTransport(_driver.Transport):  # type: ignore[misc]
    Consumer: ClassVar[type[ConsumerT]] = ClarionConsumer
    Producer: ClassVar[type[ProducerT]] = ClarionProducer
