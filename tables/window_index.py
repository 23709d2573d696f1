"""The digest's in-memory index of the open windows in the partitions this worker owns
(deadline heaps, watermarks, stream time), rebuilt from the digests table whenever the
assignment changes. agents/digest.py reads and updates it; the assembly creates one per app."""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from faust.types import TP

from logic.partitioning import partition_of
from schemas.common import Lane
from schemas.digests import DigestWindow
from streams.catalog import EVENTS_REKEYED, INGRESS, lane_topic
from streams.faust_internals import active_partitions
from tables import keys

if TYPE_CHECKING:
    import faust

    from streams.positions import Positions
    from streams.settings import Settings
    from streams.topics import Topics

log = logging.getLogger("clarion.digest")
LaneP = tuple[Lane, int]


class WindowIndex:
    """This worker's in-memory view of the windows in the partitions it owns: deadline heaps,
    the applied-offset and closed-until watermarks, stream time and progress per lane
    partition. Rebuilt from the table whenever the assignment changes."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        topics: Topics,
        digests: faust.Table,
        positions: Positions,
    ) -> None:
        self.app, self.settings, self.topics = app, settings, topics
        self.digests, self.positions = digests, positions
        self.heaps: dict[LaneP, list[tuple[float, bytes]]] = defaultdict(list)
        # per lane partition: ingress "topic:partition" -> highest offset folded in
        self.applied: dict[LaneP, dict[str, int]] = defaultdict(dict)
        self.closed_until: dict[LaneP, float] = {}
        self.stream_time: dict[LaneP, float] = {}
        self.partitions: frozenset[int] | None = None
        self.stale = True  # set on every (re)assignment; checked per message, cheaply
        self.overdue_logged: dict[LaneP, float] = {}
        # The open windows seen since the last rebuild, decoded (agents/digest.py keeps it in
        # step with the table, which only it writes).
        self.open_windows: dict[bytes, DigestWindow] = {}
        # Windows being flushed right now (the flush awaits the broker); others wait on it.
        self.flushing: dict[bytes, asyncio.Future[None]] = {}

    def assigned(self) -> frozenset[int]:
        return active_partitions(self.app, self.topics.ticks.get_topic_name())

    def ensure_current(self) -> None:
        if not self.stale:
            return
        self.stale = False
        # Always rebuild, even when the partitions are the ones held before: they may have
        # been away in between (A -> B -> A across rebalances this worker slept through),
        # and the other owner opened and flushed windows there. Skipping the rebuild then
        # left windows without a heap entry: open in the table, never flushed.
        self.rebuild(self.assigned())

    def keep_stream_time(self, assigned: frozenset[int]) -> None:
        """Called at every assignment: a partition that left this worker loses its stream
        time, even if it comes back before the next rebuild (another owner moved on)."""
        for lp in [lp for lp in self.stream_time if lp[1] not in assigned]:
            del self.stream_time[lp]

    def rebuild(self, assigned: frozenset[int]) -> None:
        self.heaps.clear()
        self.open_windows.clear()
        self.applied.clear()
        self.closed_until.clear()
        self.keep_stream_time(assigned)
        windows_seen = 0
        for key, value in self.digests.items():
            p = keys.digest_progress_partition(key)
            if p is not None:
                for lane, progress in value.items():
                    lp = (lane, p)
                    self._merge(lp, progress.applied)
                    self.closed_until[lp] = max(
                        self.closed_until.get(lp, 0.0), progress.closed_until
                    )
                continue
            w: DigestWindow = value
            lp = (w.lane, partition_of(w.recipient_id, self.settings.partitions))
            heapq.heappush(self.heaps[lp], (w.deadline, key))
            self.open_windows[key] = w
            self._merge(lp, w.sources)
            windows_seen += 1
        self.partitions = assigned
        log.info(
            "window index rebuilt: %d open windows in partitions %s", windows_seen, sorted(assigned)
        )

    def _merge(self, lp: LaneP, sources: dict[str, int]) -> None:
        marks = self.applied[lp]
        for tp, offset in sources.items():
            marks[tp] = max(marks.get(tp, -1), offset)

    def observe(self, lane: Lane, tp: TP, offset: int, timestamp: float) -> None:
        """Every lane record processed moves stream time and the processed position."""
        lp = (lane, tp.partition)
        self.positions.observe(tp, offset)
        self.stream_time[lp] = max(self.stream_time.get(lp, 0.0), timestamp)

    def cutoff(self, lane: Lane, partition: int, now: float) -> float:
        """Windows with a deadline at or before this may flush: the wall clock once nothing
        older can still arrive (the lane partition and the ingress partitions feeding it
        are caught up), else stream time."""
        if all(self.positions.caught_up(tp) for tp in self.feeding(lane, partition)):
            return now
        return self.stream_time.get((lane, partition), 0.0)

    def feeding(self, lane: Lane, partition: int) -> list[TP]:
        """The partitions this worker owns whose backlog could still add to the lane
        partition's windows."""
        # Ingress partition p feeds lane partition p (records a foreign partitioner put
        # elsewhere reach p through events.rekeyed p, so that partition feeds it too).
        topic = self.settings.topic
        feeding = [TP(topic(name), partition) for name in (*INGRESS, EVENTS_REKEYED)]
        # Read by topic loaders (agents/ingest.py), not by Faust's consumer.
        feeding = [tp for tp in feeding if self.positions.owned(tp)]
        feeding.append(TP(topic(lane_topic(lane)), partition))
        return feeding

    def mark_stale(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.stale = True

    def on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.stale = True
        self.keep_stream_time(self.assigned())
