"""Where this worker's agents are in their partitions, and whether a partition is caught up.

A window may close by the wall clock only when nothing older can still arrive for it: the
lane partition *and* the ingress partitions that feed it (ingress is keyed by recipient, so
ingress partition p feeds lane partition p) have no backlog on this worker.

Positions are valid for one assignment only (logic/progress.py says why): they are
forgotten when their partitions are revoked and ignored once the consumer generation moves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from faust.types import TP

from logic.progress import ProcessedPositions, is_caught_up
from streams.faust_internals import committed_offset

if TYPE_CHECKING:
    import faust


class Positions:
    """One app's processed positions (where its agents are in each partition)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._processed_next: ProcessedPositions[TP] = ProcessedPositions()
        app.on_partitions_revoked.connect(self._on_revoked)

    def observe(self, tp: TP, offset: int) -> None:
        self._processed_next.observe(tp, offset, self.app.consumer_generation_id)

    def forget(self, tps: Iterable[TP]) -> None:
        self._processed_next.forget(tps)

    def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Sent by Faust after the agents finished their in-flight records: args[0] is the
        # revoked set (every partition, under Faust's eager rebalancing).
        self.forget(args[0] if args else kwargs.get("revoked", ()))

    def caught_up(self, tp: TP) -> bool:
        app = self.app
        try:
            highwater = app.consumer.highwater(tp)
        except AssertionError:  # assigned by the group, not yet by the consumer (start-up)
            return False
        # Before the first record of this assignment, the committed offset is where the
        # consumer resumed: Faust keeps it on the consumer after seeking there on assignment.
        committed = committed_offset(app.consumer, tp)
        position = self._processed_next.next_offset(tp, app.consumer_generation_id)
        return is_caught_up(position, committed, highwater)

    def owned(self, tp: TP) -> bool:
        return tp in self.app.assignor.assigned_actives()
