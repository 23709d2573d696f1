"""Event-id dedupe that stays correct when a message is reprocessed after a crash."""

from __future__ import annotations

from collections.abc import Sequence


def is_duplicate(seen: Sequence[float] | None, offset: int) -> bool:
    """`seen` is [ingress offset, first-seen time] stored the first time the event id passed.

    The same id at the *same* offset is a redelivery of that very message (the worker died
    after the table write reached the changelog but before the offset commit): it must be
    processed again, or its notification could be lost. Any other offset is a real duplicate
    (a producer retry or a re-sent event).
    """
    return seen is not None and int(seen[0]) != offset
