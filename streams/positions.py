"""Where this worker's agents are in their partitions, and whether a partition is caught up.

A window may close by the wall clock only when nothing older can still arrive for it: the
lane partition *and* the ingress partitions that feed it (ingress is keyed by recipient, so
ingress partition p feeds lane partition p) have no backlog on this worker.

Positions are valid for one assignment only (logic/progress.py says why): they are
forgotten when their partitions are revoked and ignored once the consumer generation moves.

A topic read by a topic loader (streams/topic_loader.py: the ingress topics) is not in
Faust's consumer: its loader says whether it reads a partition and is caught up there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from faust.types import TP

from logic.progress import ProcessedPositions, is_caught_up
from streams.faust_internals import active_partitions, committed_offset

if TYPE_CHECKING:
    import faust


class LoaderPositions(Protocol):
    """What a topic loader tells about the partitions it reads."""

    topics: list[str]

    def reads(self, topic: str, partition: int) -> bool: ...

    def caught_up(self, topic: str, partition: int) -> bool: ...

    def position(self, topic: str, partition: int) -> tuple[int | None, int | None, int | None]: ...


class Positions:
    """One app's processed positions (where its agents and loaders are in each partition)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._processed_next: ProcessedPositions[TP] = ProcessedPositions()
        self._loaders: dict[str, LoaderPositions] = {}  # topic -> the loader reading it
        app.on_partitions_revoked.connect(self._on_revoked)

    def read_by(self, loader: LoaderPositions) -> None:
        """`loader` reads its topics on this worker instead of Faust's consumer."""
        for topic in loader.topics:
            self._loaders[topic] = loader

    def observe(self, tp: TP, offset: int) -> None:
        self._processed_next.observe(tp, offset, self.app.consumer_generation_id)

    def forget(self, tps: Iterable[TP]) -> None:
        self._processed_next.forget(tps)

    def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Sent by Faust after the agents finished their in-flight records: args[0] is the
        # revoked set (every partition, under Faust's eager rebalancing).
        self.forget(args[0] if args else kwargs.get("revoked", ()))

    def caught_up(self, tp: TP) -> bool:
        loader = self._loaders.get(tp.topic)
        if loader is not None:
            return loader.caught_up(tp.topic, tp.partition)
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

    def highwater(self, tp: TP) -> int | None:
        """The partition's end offset as this worker last fetched it (None if not yet)."""
        loader = self._loaders.get(tp.topic)
        if loader is not None:
            return loader.position(tp.topic, tp.partition)[2]
        try:
            return self.app.consumer.highwater(tp)  # type: ignore[no-any-return]
        except AssertionError:  # not assigned (yet) to the consumer
            return None

    def describe(self, tp: TP) -> str:
        """Processed-next, committed and highwater offsets of a partition, for logs."""
        loader = self._loaders.get(tp.topic)
        if loader is not None:
            next_offset, committed, highwater = loader.position(tp.topic, tp.partition)
        else:
            app = self.app
            next_offset = self._processed_next.next_offset(tp, app.consumer_generation_id)
            committed, highwater = committed_offset(app.consumer, tp), app.consumer.highwater(tp)
        return f"processed-next {next_offset} committed {committed} highwater {highwater}"

    def owned(self, tp: TP) -> bool:
        """Whether this worker processes the partition (its Faust consumer or a loader)."""
        loader = self._loaders.get(tp.topic)
        if loader is not None:
            return loader.reads(tp.topic, tp.partition)
        return tp.partition in active_partitions(self.app, tp.topic)
