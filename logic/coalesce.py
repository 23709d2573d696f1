"""Many callers' items as few batch calls, each caller still awaiting its own result.

``await coalescer.submit(item)`` returns that item's result. Items that are waiting at the
same moment are grouped by ``key(item)`` and handed to ``batch(key, items)`` -- at most
``max_batch`` at a time -- which returns one result per item, in the items' order.

It batches what is ready and, by default, never waits to fill a batch: a drain runs on the
loop's next iteration after a submit (``call_soon``), so the items submitted by every task
that ran in this iteration go together, and no timer adds latency. A key may be given a
``linger`` (seconds): its items then wait, up to that long after the oldest arrived, for a
full batch. For work whose latency does not matter (a marketing campaign's mail), where a
few big calls are worth far more than speed. What makes batches big under load
is back-pressure, not lingering: at most ``max_in_flight`` batch calls run at once (and at
most ``max_in_flight_per_key`` of one key), and whatever arrives while they run waits for
the next one -- like a database's group commit.

A batch call that raises (or returns the wrong number of results) fails every item of that
batch with the exception and nothing else: each of its callers sees it raised by its own
``submit``; callers of other batches are untouched. A caller cancelled while its item
still waits takes the item out of the queue; one cancelled while its batch runs just stops
waiting (the batch goes on for the others).

No Faust import: used by the provider senders (sinks/providers/sendgrid.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)


@dataclass(eq=False)
class _Waiting(Generic[T, R]):
    item: T
    future: asyncio.Future[R] = field(repr=False)
    since: float = 0.0  # loop time of the submit


class Coalescer(Generic[T, K, R]):
    def __init__(
        self,
        batch: Callable[[K, list[T]], Awaitable[Sequence[R]]],
        *,
        key: Callable[[T], K],
        max_batch: int,
        max_in_flight: int,
        max_in_flight_per_key: int | None = None,
        linger: Callable[[K], float] | None = None,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        if max_in_flight_per_key is not None and max_in_flight_per_key < 1:
            raise ValueError("max_in_flight_per_key must be at least 1 (or None)")
        self._batch = batch
        self._key = key
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.max_in_flight_per_key = max_in_flight_per_key
        self._linger = linger
        self._timer: asyncio.TimerHandle | None = None  # the next lingering key's deadline
        # Waiting items per key; a dict keeps the keys in order of arrival, so the key that
        # has waited longest is served first.
        self._waiting: dict[K, deque[_Waiting[T, R]]] = {}
        self._busy: Counter[K] = Counter()  # batch calls running, per key
        self._running: set[asyncio.Task[None]] = set()
        self._drain_scheduled = False
        self._closed = False
        # Figures for tests and metrics.
        self.batches = 0
        self.items = 0

    @property
    def in_flight(self) -> int:
        """Batch calls running now."""
        return len(self._running)

    @property
    def waiting(self) -> int:
        """Items not yet handed to a batch call."""
        return sum(len(q) for q in self._waiting.values())

    async def submit(self, item: T) -> R:
        """The item's own result, from the batch it ends up in (see the module docstring)."""
        if self._closed:
            raise RuntimeError("coalescer is closed")
        loop = asyncio.get_running_loop()
        entry: _Waiting[T, R] = _Waiting(item, loop.create_future(), loop.time())
        key = self._key(item)
        self._waiting.setdefault(key, deque()).append(entry)
        self._schedule_drain(loop)
        try:
            return await entry.future
        except asyncio.CancelledError:
            # Still queued: leave the queue, so no batch carries an item nobody awaits.
            queue = self._waiting.get(key)
            if queue is not None and entry in queue:
                queue.remove(entry)
                if not queue:
                    del self._waiting[key]
            raise

    def _schedule_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        # Next iteration, not now: the other tasks made ready in this iteration submit too.
        if not self._drain_scheduled and not self._closed:
            self._drain_scheduled = True
            loop.call_soon(self._drain)

    def _lingering_until(self, key: K, queue: deque[_Waiting[T, R]], now: float) -> float | None:
        """When a key's partial batch stops waiting for more items; None = send it now."""
        if self._linger is None or len(queue) >= self.max_batch:
            return None
        until = queue[0].since + self._linger(key)
        return until if until > now else None

    def _drain(self) -> None:
        """Start batch calls for what waits, oldest key first, while slots are free."""
        self._drain_scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = asyncio.get_running_loop()
        now, wake = loop.time(), None
        per_key = self.max_in_flight_per_key
        for key in list(self._waiting):
            while len(self._running) < self.max_in_flight and (
                per_key is None or self._busy[key] < per_key
            ):
                queue = self._waiting.get(key)
                if not queue:
                    self._waiting.pop(key, None)
                    break
                until = self._lingering_until(key, queue, now)
                if until is not None:
                    wake = until if wake is None else min(wake, until)
                    break
                take = min(self.max_batch, len(queue))
                entries = [queue.popleft() for _ in range(take)]
                if not queue:
                    del self._waiting[key]
                self._start(key, entries)
            if len(self._running) >= self.max_in_flight:
                break
        if wake is not None and not self._closed:
            self._timer = loop.call_at(wake, self._drain)

    def _start(self, key: K, entries: list[_Waiting[T, R]]) -> None:
        self._busy[key] += 1
        self.batches += 1
        self.items += len(entries)
        task = asyncio.ensure_future(self._call(key, entries))
        self._running.add(task)
        # A done callback, not a `finally`: it runs even for a task cancelled before its
        # first step, so neither a slot nor a caller can be left behind.
        task.add_done_callback(lambda t: self._finished(t, key, entries))

    async def _call(self, key: K, entries: list[_Waiting[T, R]]) -> None:
        try:
            results = await self._batch(key, [e.item for e in entries])
            if len(results) != len(entries):
                raise ValueError(f"batch returned {len(results)} results for {len(entries)} items")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for e in entries:
                if not e.future.done():
                    e.future.set_exception(exc)
            return
        for e, result in zip(entries, results, strict=True):
            if not e.future.done():  # its caller may have stopped waiting
                e.future.set_result(result)

    def _finished(self, task: asyncio.Task[None], key: K, entries: list[_Waiting[T, R]]) -> None:
        self._running.discard(task)
        self._busy[key] -= 1
        if self._busy[key] <= 0:
            del self._busy[key]
        for e in entries:  # cancelled (close, shutdown): its callers stop waiting too
            if not e.future.done():
                e.future.cancel()
        if self._waiting and not self._closed:
            self._schedule_drain(task.get_loop())

    async def aclose(self) -> None:
        """Cancel running batch calls and every waiting item (their callers see a
        CancelledError); later submits raise RuntimeError."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for queue in self._waiting.values():
            for e in queue:
                e.future.cancel()
        self._waiting.clear()
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
