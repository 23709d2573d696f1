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
started reading: offsets acked in the current assignment, or offsets known not to exist
because the consumer read past them (compacted records, transaction markers). Acks of
another generation, or made while the partition is revoked or the flow is stopped, do not
count: at worst those records are processed again (at least once), never lost.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class _Partition:
    generation: int
    # First offset not yet committed by this assignment; None until the committed offset
    # is known or (no commit yet) the first record is read.
    start: int | None = None
    last_read: int | None = None
    # Half-open ranges [begin, end) the consumer read past: those offsets hold no record.
    holes: list[tuple[int, int]] = field(default_factory=list)


class CommitFrontier(Generic[K]):
    """Per assigned partition: where its commit may advance to."""

    def __init__(self) -> None:
        self._parts: dict[K, _Partition] = {}

    def assign(self, tps: Iterable[K], generation: int) -> None:
        self._parts = {tp: _Partition(generation) for tp in tps}

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
        group never committed, so the reset position decides and the first read tells it)."""
        p = self._parts.get(tp)
        if p is None:
            return
        p.last_read = None  # the next read does not follow the last one
        if offset is not None and offset > 0 and (p.start is None or offset > p.start):
            p.start = offset
            p.holes = [h for h in p.holes if h[1] > offset]

    def read(self, tp: K, offset: int, generation: int | None) -> None:
        """The consumer handed record `offset` to the streams."""
        p = self._parts.get(tp)
        if p is None or generation != p.generation:
            return
        if p.start is None:
            p.start = offset
        begin = p.start if p.last_read is None else max(p.last_read + 1, p.start)
        if offset > begin:
            if p.holes and p.holes[-1][1] == begin:
                p.holes[-1] = (p.holes[-1][0], offset)
            else:
                p.holes.append((begin, offset))
        if p.last_read is None or offset > p.last_read:
            p.last_read = offset

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
