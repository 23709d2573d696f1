"""How far a worker has processed each of its partitions, and whether one is caught up.

Pure logic (no Faust): streams/positions.py feeds it the consumer's generation, committed
offsets and highwaters.

A processed position is only true for the assignment it was taken in. Once a partition is
revoked, another worker may process it (and commit past it, or crash before committing);
when it comes back, a position kept from before is wrong either way:
- below the committed offset: the partition looks behind until a new record arrives. A
  quiet partition then holds its lane partition's cutoff at stream time and windows close
  late, or never while nothing else arrives there;
- above the committed offset (our last records were processed, not committed, and the next
  owner died before committing): it looks caught up while the re-read backlog is still
  ahead, so the wall clock may close a window before that backlog is folded in.
So a position is dropped when its partition is revoked, and a position taken in another
consumer generation (a record processed in the middle of a rebalance) never counts.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class ProcessedPositions(Generic[K]):
    """Per partition: the next offset to process, stamped with the consumer generation."""

    def __init__(self) -> None:
        self._next: dict[K, tuple[int, int]] = {}

    def observe(self, tp: K, offset: int, generation: int) -> None:
        self._next[tp] = (generation, offset + 1)

    def forget(self, tps: Iterable[K]) -> None:
        for tp in tps:
            self._next.pop(tp, None)

    def next_offset(self, tp: K, generation: int) -> int | None:
        """The next offset to process in `tp`, if known for this generation."""
        entry = self._next.get(tp)
        if entry is None or entry[0] != generation:
            return None
        return entry[1]

    def get(self, tp: K) -> int | None:
        """The last next offset recorded, whatever its generation (for diagnostics)."""
        entry = self._next.get(tp)
        return None if entry is None else entry[1]

    def __len__(self) -> int:
        return len(self._next)


def is_caught_up(processed_next: int | None, committed: int | None, highwater: int | None) -> bool:
    """Nothing is left to process in the partition: the processed position (or, before the
    first record of this assignment, the committed offset the consumer resumed from) has
    reached the highwater. Unknown highwater: not caught up."""
    if highwater is None:
        return False
    position = processed_next if processed_next is not None else (committed or 0)
    return position >= highwater
