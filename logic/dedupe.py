"""Event-id dedupe that stays correct when a message is reprocessed after a crash."""

from __future__ import annotations

from collections.abc import Sequence


def seen_row(source: str, offset: int, now: float) -> list[float | str]:
    """The `seen-events` row written the first time an event id passes: where it was read
    (ingress "topic:partition" and offset) and when."""
    return [offset, now, source]


def is_duplicate(seen: Sequence[float | str] | None, source: str, offset: int) -> bool:
    """`seen` is the row stored the first time the event id passed (`seen_row`).

    The same id at the *same* position (topic, partition and offset) is a redelivery of that
    very message (the worker died after the table write reached the changelog but before the
    offset commit, or a replay / re-keyed copy standing for it): it must be processed again,
    or its notification could be lost. Any other position is a real duplicate (a producer
    retry, a re-sent event, or the same event under another key or on another topic).
    Rows written before the source was recorded hold only [offset, time].
    """
    if seen is None:
        return False
    if int(seen[0]) != offset:
        return True
    return len(seen) > 2 and seen[2] != source
