"""Apply per-(recipient, channel) token buckets to a notification's channels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from logic.buckets import BucketLimit, BucketState, seconds_until_available, take
from logic.rules import Rules
from schemas.common import Category, Channel
from schemas.users import Preferences


def limit_for(
    rules: Rules, category: Category, channel: Channel, prefs: Preferences | None
) -> BucketLimit | None:
    """The bucket for this channel, with the user's own per-hour override if any."""
    base = rules.limit_for(category, channel)
    if base is None:
        return None
    per_hour = prefs.rate_limits.get(channel, base.per_hour) if prefs else base.per_hour
    return BucketLimit(per_hour=per_hour, burst=max(1.0, min(base.burst, per_hour)))


@dataclass(frozen=True)
class Throttle:
    allowed: frozenset[Channel]
    throttled: frozenset[Channel]
    # Bucket states to write back (only for channels whose bucket changed).
    updates: Mapping[Channel, BucketState] = field(default_factory=dict)


def wait_needed(
    channels: Iterable[Channel],
    limits: Mapping[Channel, BucketLimit | None],
    states: Mapping[Channel, BucketState | None],
    now: float,
) -> float:
    """Seconds until every limited channel has a token (0 = all can go now)."""
    waits = [
        seconds_until_available(states.get(ch), limit, now)
        for ch in channels
        if (limit := limits.get(ch)) is not None
    ]
    return max(waits, default=0.0)


def take_tokens(
    channels: Iterable[Channel],
    limits: Mapping[Channel, BucketLimit | None],
    states: Mapping[Channel, BucketState | None],
    now: float,
) -> Throttle:
    """One token per channel (not per device): channels without one are throttled."""
    allowed: set[Channel] = set()
    throttled: set[Channel] = set()
    updates: dict[Channel, BucketState] = {}
    for ch in channels:
        limit = limits.get(ch)
        if limit is None:
            allowed.add(ch)
            continue
        ok, new_state = take(states.get(ch), limit, now)
        updates[ch] = new_state
        (allowed if ok else throttled).add(ch)
    return Throttle(frozenset(allowed), frozenset(throttled), updates)
