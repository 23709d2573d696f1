"""A provider's send rate, paced on this side so Clarion slows down instead of collecting
429s: an asyncio token bucket that callers wait on, first come first served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


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
        self.rate = rate_per_s
        # Default burst: 1/10 s worth, at least one send.
        self.burst = max(1.0, burst if burst is not None else rate_per_s / 10)
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        # Waiters queue on the lock, so a steady stream of new callers cannot starve one.
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            # The tolerance: a sleep too short to move a float clock would spin forever.
            while self._tokens < 1.0 - 1e-9:
                await self._sleep((1.0 - self._tokens) / self.rate)
                self._refill()
            self._tokens = max(0.0, self._tokens - 1.0)
