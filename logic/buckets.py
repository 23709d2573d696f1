"""Token-bucket rate limiting over a state small enough to live in a table row.

Clock going backwards (a restart on a host whose clock is behind, NTP stepping): elapsed
time is taken as zero and `updated_at` keeps the later of the stored and current clock.
Refill then resumes only once the clock passes the stored time again, so a skewed clock
can delay tokens by the skew but never grants any that were not earned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class BucketLimit:
    per_hour: float  # refill rate, tokens per hour
    burst: float  # capacity, and what a bucket never seen before starts with

    def __post_init__(self) -> None:
        if not (math.isfinite(self.per_hour) and self.per_hour > 0):
            raise ValueError(f"per_hour must be a positive number, got {self.per_hour!r}")
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError(f"burst must be at least 1, got {self.burst!r}")


@dataclass(frozen=True)
class BucketState:
    tokens: float
    updated_at: float  # unix seconds of the last refill computation


def take(
    state: BucketState | None, limit: BucketLimit, now: float, cost: float = 1.0
) -> tuple[bool, BucketState]:
    """Refill by elapsed time (capped at burst), then take `cost` tokens if available.

    A missing state is a full bucket. Returns (allowed, new_state); when not allowed the
    state is still refilled (tokens not consumed). A `cost` above `burst` is never allowed.
    """
    _check_cost(cost)
    refilled = _refill(state, limit, now)
    if refilled.tokens < cost:
        return False, refilled
    return True, BucketState(max(0.0, refilled.tokens - cost), refilled.updated_at)


def seconds_until_available(
    state: BucketState | None, limit: BucketLimit, now: float, cost: float = 1.0
) -> float:
    """0 if `cost` tokens are available now, else how long until they will be.

    `take` at `now + result` is guaranteed to succeed; math.inf if `cost` exceeds `burst`.
    """
    _check_cost(cost)
    refilled = _refill(state, limit, now)
    if refilled.tokens >= cost:
        return 0.0
    if cost > limit.burst:
        return math.inf
    # After a backwards clock step refill only starts at updated_at, so wait for that too.
    deficit = cost - refilled.tokens
    wait = refilled.updated_at - now + deficit * _SECONDS_PER_HOUR / limit.per_hour
    # Rounding (large timestamps have ~0.2 us resolution) can leave the refill a hair
    # short of `cost` at `now + wait`; nudge forward until it is not. The nudge doubles
    # each round, so this ends within a few rounds in practice and always terminates.
    step = math.ulp(now + wait)
    while _refill(state, limit, now + wait).tokens < cost:
        wait += step
        step *= 2
    return wait


def _refill(state: BucketState | None, limit: BucketLimit, now: float) -> BucketState:
    if state is None:
        return BucketState(limit.burst, now)
    elapsed = max(0.0, now - state.updated_at)
    tokens = state.tokens + elapsed * limit.per_hour / _SECONDS_PER_HOUR
    # Clamping also absorbs a limit that was lowered since the state was written.
    return BucketState(min(limit.burst, max(0.0, tokens)), max(state.updated_at, now))


def _check_cost(cost: float) -> None:
    if not (math.isfinite(cost) and cost >= 0):
        raise ValueError(f"cost must be a non-negative number, got {cost!r}")
