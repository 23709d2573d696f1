"""Event-id dedupe that stays correct when a message is reprocessed after a crash."""

from __future__ import annotations

from typing import Protocol


class FirstSeen(Protocol):
    """Where an event id first passed ingest (the `seen-events` row, tables.rows.SeenEvent)."""

    @property
    def offset(self) -> int: ...

    @property
    def source(self) -> str | None: ...


def is_duplicate(seen: FirstSeen | None, source: str, offset: int) -> bool:
    """`seen` is the row stored the first time the event id passed.

    The same id at the *same* position (topic, partition and offset) is a redelivery of that
    very message (the worker died after the table write reached the changelog but before the
    offset commit, or a replay / re-keyed copy standing for it): it must be processed again,
    or its notification could be lost. Any other position is a real duplicate (a producer
    retry, a re-sent event, or the same event under another key or on another topic).
    Rows written before the source was recorded have none (`source` None).
    """
    if seen is None:
        return False
    if seen.offset != offset:
        return True
    return seen.source is not None and seen.source != source
