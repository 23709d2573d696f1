"""Which offset a partition may be committed to: never past a record not processed.

Pure logic (no Faust): streams/consumer.py feeds it the consumer's assignments, seeks,
reads and acks. Faust's own check (Consumer._new_offset) lets a commit pass a record that
was never processed in three ways:
- before a partition's first commit (committed offset None or 0) it commits from the lowest
  acked offset, whatever was below it;
- with a committed offset c it accepts acked offsets starting at c + 1, so a hole of one
  offset (record c itself still in flight) is committed past;
- a record a stream skips during a rebalance (flow control suspended, or read in an older
  consumer generation) is acked like a processed one, even on a `noack` stream, and after
  revocation that ack lands in a fresh list with no committed offset to check against.

Here a partition's commit advances only over a contiguous run from where this assignment
started reading: offsets acked in the current assignment, or offsets known not to exist.
Acks of another generation, or made while the partition is revoked or the flow is stopped,
do not count: at worst those records are processed again (at least once), never lost.

Which offsets do not exist is learnt from what the Kafka client *fetched* (a fetch returns
a partition's records in order from its position, so offsets it jumps over hold no record:
compacted away, or transaction markers), never from what reached the streams. Faust drops
records it has fetched without handing them on (a partition that leaves its set of active
partitions while a batch is being handed out, a batch cut short); such a record leaves a
gap in what the streams see, and taking that gap for offsets without records committed past
a payment that was never processed (issue 10: 7 of 760 lost after a kill -9 under load).
A record fetched and not handed on is reported instead, and the consumer reads its
partition again from there.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class _Partition:
    generation: int
    # First offset not yet committed by this assignment; None until the committed offset
    # is known or (no commit yet) the first record is read.
    start: int | None = None
    # Half-open ranges [begin, end) a fetch jumped over: those offsets hold no record.
    holes: list[tuple[int, int]] = field(default_factory=list)
    # Where the client's next fetch of this partition starts (None: not known, after a seek
    # to the log's start); offsets fetched and not yet handed to the streams, in order.
    fetch_next: int | None = None
    pending: deque[int] = field(default_factory=deque)
    # New at the assignment and at every seek: records of a fetch that a seek or a new
    # assignment overtook are stale.
    epoch: int = 0


class CommitFrontier(Generic[K]):
    """Per assigned partition: where its commit may advance to."""

    def __init__(self) -> None:
        self._parts: dict[K, _Partition] = {}
        self._epochs = itertools.count(1)

    def assign(self, tps: Iterable[K], generation: int) -> None:
        self._parts = {tp: _Partition(generation, epoch=next(self._epochs)) for tp in tps}

    def revoke(self, tps: Iterable[K]) -> None:
        for tp in tps:
            self._parts.pop(tp, None)

    def is_live(self, tp: K) -> bool:
        return tp in self._parts

    def start(self, tp: K) -> int | None:
        p = self._parts.get(tp)
        return None if p is None else p.start

    def seeked(self, tp: K, offset: int | None) -> None:
        """The consumer was positioned at `offset` (its committed offset; None or 0 when the
        group never committed, so the reset position decides and the first fetch tells it)."""
        p = self._parts.get(tp)
        if p is None:
            return
        self._moved(p, offset if offset else None)
        if offset is not None and offset > 0 and (p.start is None or offset > p.start):
            p.start = offset
            p.holes = [h for h in p.holes if h[1] > offset]

    def refetched(self, tp: K, offset: int | None) -> None:
        """The consumer was sent back to `offset` (None: the log's start): a record fetched
        and not handed on (`read`), or the start after a fetch a seek overtook. The start
        stays: records below it may still be in flight."""
        p = self._parts.get(tp)
        if p is not None:
            self._moved(p, offset)

    def _moved(self, p: _Partition, position: int | None) -> None:
        p.fetch_next = position
        p.pending.clear()
        p.epoch = next(self._epochs)

    def epochs(self) -> dict[K, int]:
        return {tp: p.epoch for tp, p in self._parts.items()}

    def epoch(self, tp: K) -> int | None:
        p = self._parts.get(tp)
        return None if p is None else p.epoch

    def fetched(self, tp: K, offsets: Sequence[int], generation: int | None) -> None:
        """The client fetched these records (ascending) of `tp`, from its position on."""
        p = self._parts.get(tp)
        if p is None or not offsets:
            return
        if generation != p.generation:  # fetched across a rebalance: where it began is unknown
            p.fetch_next = None
            return
        if p.start is None:
            p.start = offsets[0]
        begin = offsets[0] if p.fetch_next is None else p.fetch_next
        for offset in offsets:
            if offset > begin and begin >= p.start:
                if p.holes and p.holes[-1][1] == begin:
                    p.holes[-1] = (p.holes[-1][0], offset)
                else:
                    p.holes.append((begin, offset))
            begin = max(begin, offset + 1)
        p.fetch_next = begin
        p.pending.extend(offsets)

    def read(self, tp: K, offset: int, generation: int | None) -> int | None:
        """The consumer handed record `offset` to the streams. Returns the first record
        fetched before it and never handed on, if any: the partition must be read again from
        there (and this record, and the rest of its batch, not handed on now)."""
        p = self._parts.get(tp)
        if p is None or generation != p.generation:
            return None
        if p.start is None:
            p.start = offset
        dropped = None
        while p.pending and p.pending[0] <= offset:
            earlier = p.pending.popleft()
            if earlier < offset and dropped is None:
                dropped = earlier
        if dropped is not None:
            return dropped
        return None

    def not_handed_on(self) -> list[tuple[K, int]]:
        """Partitions with records fetched that a finished batch never handed on, and the
        first of them: read again from there."""
        return [(tp, p.pending[0]) for tp, p in self._parts.items() if p.pending]

    def accepts_ack(self, tp: K, generation: int | None, flow_active: bool) -> bool:
        """Whether an ack may count towards a commit: only from the live assignment, while
        records flow (a stream skips, and acks, what it pulls while the flow is stopped)."""
        p = self._parts.get(tp)
        return flow_active and p is not None and generation == p.generation

    def advance(self, tp: K, acked: set[int]) -> int | None:
        """The offset to commit (one past the contiguous run of processed or non-existent
        offsets from the start), or None if the record at the start is not processed yet.
        The start moves there; offsets below it may be dropped from `acked`."""
        p = self._parts.get(tp)
        if p is None or p.start is None:
            return None
        n = p.start
        holes = sorted(p.holes)
        i = 0
        while True:
            while i < len(holes) and holes[i][1] <= n:
                i += 1
            if i < len(holes) and holes[i][0] <= n:
                n = holes[i][1]
            elif n in acked:
                n += 1
            else:
                break
        if n == p.start:
            return None
        p.start = n
        p.holes = holes[i:]
        return n
