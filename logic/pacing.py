"""A provider's send rate, paced on this side so Clarion slows down instead of collecting
429s: an asyncio token bucket that callers wait on, first come first served.

A provider's quota is global (FCM: 600k/min per project; Twilio: a sender's messages per
second), so `CLARION_PACE_<P>_PER_S` is the rate of the whole deployment, and each worker
paces only its share of it (`worker_rate`): the group's part of the global rate
(`group_share`), split by the provider's delivery partitions the worker owns. sinks/pacers.py
recomputes it at every rebalance and moves the worker's `Pacer` there (`Pacer.set_rate`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable


def group_share(served_lanes: int, all_lanes: int, override: float | None = None) -> float:
    """The part of every provider's global rate one consumer group paces.

    Lanes split over groups (CLARION_LANES, each set under its own app id) divide each
    provider's budget by lane count unless the operator says otherwise (`override`,
    CLARION_PACE_GROUP_SHARE): a group serving every lane paces all of it, the usual split
    (critical | high, social, bulk) 1/4 and 3/4. Each lane is served by exactly one group,
    so the default shares add up to 1 over the deployment.
    """
    if override is not None:
        if not 0.0 < override <= 1.0:
            raise ValueError("a group's share of the pace must be in (0, 1]")
        return override
    if all_lanes <= 0 or not 0 <= served_lanes <= all_lanes:
        raise ValueError("served_lanes must be between 0 and all_lanes (> 0)")
    return served_lanes / all_lanes


def worker_rate(global_per_s: float, share: float, owned: int, total: int) -> float:
    """This worker's pace for a provider: the group's part of the global rate (`share`,
    `group_share`) times the fraction of the group's partitions of the provider's delivery
    topics that this worker owns (`owned` of `total`).

    Over any assignment of the group's partitions to its workers the rates add up to
    `global_per_s * share`: exact when the load is spread over the partitions. A worker whose
    partitions are idle leaves its part unused (the sum sent is then below the quota, never
    above it). Owning none gives 0: the worker must not send for this provider at all (its
    pacer holds every send until it owns a partition again).
    """
    if global_per_s < 0 or not 0.0 <= share <= 1.0:
        raise ValueError("the global rate must be >= 0 and the share in [0, 1]")
    if not 0 <= owned <= total:
        raise ValueError(f"owned partitions ({owned}) must be between 0 and total ({total})")
    if owned == 0:
        return 0.0
    return global_per_s * share * owned / total


class Pacer:
    def __init__(
        self,
        rate_per_s: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self._burst_setting = burst
        self.rate = rate_per_s
        self.burst = self._burst_at(rate_per_s)
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        # Waiters queue on the lock, so a steady stream of new callers cannot starve one.
        self._lock = asyncio.Lock()
        # Set while the lock's holder waits: resolved by set_rate, so that it re-evaluates
        # its wait (a wait at a rate about to go up, or a pause, could last for ever).
        self._changed: asyncio.Future[None] | None = None

    def _burst_at(self, rate_per_s: float) -> float:
        # Default burst: 1/10 s worth, at least one send. It follows the rate, so a group's
        # workers together burst no more than the group's 1/10 s (plus one send each).
        return max(1.0, self._burst_setting if self._burst_setting is not None else rate_per_s / 10)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def set_rate(self, rate_per_s: float) -> None:
        """Pace at `rate_per_s` from now on; 0 pauses (no send until a positive rate is set).

        What was earned until now counts at the old rate, the tokens are clamped to the new
        burst (and dropped on a pause, so nothing goes out on the way in or out of one), and
        a caller waiting for a token re-evaluates its wait at the new rate at once."""
        if rate_per_s < 0 or not math.isfinite(rate_per_s):
            raise ValueError("rate_per_s must be finite and >= 0")
        self._refill()
        self.rate = rate_per_s
        self.burst = self._burst_at(rate_per_s)
        self._tokens = 0.0 if rate_per_s == 0 else min(self._tokens, self.burst)
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    @property
    def paused(self) -> bool:
        return self.rate == 0

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            # The tolerance: a sleep too short to move a float clock would spin forever.
            while self._tokens < 1.0 - 1e-9:
                await self._wait(None if self.paused else (1.0 - self._tokens) / self.rate)
                self._refill()
            self._tokens = max(0.0, self._tokens - 1.0)

    async def _wait(self, seconds: float | None) -> None:
        """Sleep `seconds` (None: until the rate changes), or until set_rate, if sooner."""
        changed = self._changed = asyncio.get_running_loop().create_future()
        waits: list[asyncio.Future[None]] = [changed]
        if seconds is not None:
            waits.append(asyncio.ensure_future(self._sleep(seconds)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._changed = None
            for waiting in waits:
                waiting.cancel()  # no-op for the one that finished
