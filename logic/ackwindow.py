"""Concurrent sends with acks that never run ahead of unfinished ones.

A consumer commits a record's offset once it has moved past it; a sink that awaited each
provider call in turn would deliver one message per provider round trip. Here the reader
(a provider sink's topic loader, or a delay agent) stays single (it writes tables;
docs/architecture.md, "Guarantees and why they hold", says why) and hands each record's
work to a task, at most
`limit` at a time, and a record is acked only when its own work *and that of every earlier
record of its partition* has finished. The committed offset therefore never passes a send
still in flight: a crash replays exactly the unfinished tail, and the idempotency ledger
skips what in it was already sent.

No Faust import: records are anything with a partition, and `ack` is passed in.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger("clarion.sinks")
R = TypeVar("R")
Work = Callable[[], Awaitable[None]]


class AckWindow(Generic[R]):
    def __init__(
        self,
        limit: int,
        ack: Callable[[R], object],
        partition_of: Callable[[R], Hashable],
        retry_delay_s: float = 1.0,
    ) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._ack = ack
        self._partition_of = partition_of
        self._retry_delay_s = retry_delay_s
        self._pending: dict[Hashable, deque[tuple[R, asyncio.Task[None]]]] = {}
        self.in_flight = 0

    async def submit(self, record: R, work: Work) -> None:
        """Start `work` for `record` once a slot is free (back-pressure on the consumer).

        The task is created here, inside the agent's iteration, so it inherits the agent's
        context variables, among them Faust's current event: table writes made by the
        work go to the record's own partition, as if the agent had made them.
        """
        await self._slots.acquire()
        partition = self._partition_of(record)
        task = asyncio.ensure_future(self._run(work))
        self.in_flight += 1
        self._pending.setdefault(partition, deque()).append((record, task))
        task.add_done_callback(lambda _t: self._on_done(partition))

    async def _run(self, work: Work) -> None:
        # Work is expected to handle every provider outcome itself. What still raises is
        # infrastructure (a produce that timed out, a bug): acking would lose the record and
        # skipping it would hold the partition's commit forever, so it is tried again.
        delay = self._retry_delay_s
        while True:
            try:
                await work()
                return
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # this task was cancelled (shutdown): the record is replayed
                # A CancelledError nobody sent to this task (an awaited future that someone
                # else cancelled): the work did not finish, so it is tried again like any
                # other failure rather than ending the task as if it had been cancelled.
                log.error("delivery work ended in a stray CancelledError; trying it again")
            except Exception:
                log.exception("delivery work failed; trying it again in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _on_done(self, partition: Hashable) -> None:
        self._slots.release()
        self.in_flight -= 1
        queue = self._pending[partition]
        # A cancelled task (shutdown) is replayed, not acked, and it stays at the head: acking
        # later records would let Faust commit past it (Faust's gap check does not see a
        # one-offset hole, nor any hole before a partition's first commit).
        while queue and queue[0][1].done() and not queue[0][1].cancelled():
            record, _task = queue.popleft()
            self._ack(record)

    async def drain(self) -> None:
        """Wait for every submitted task (and so every ack) to finish."""
        tasks = [task for queue in self._pending.values() for _r, task in queue]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class KeyedChain:
    """Runs the work for one key strictly one after another (per-target order for channels
    that promise it), while different keys run side by side."""

    def __init__(self) -> None:
        self._tails: dict[Hashable, asyncio.Future[None]] = {}

    async def run(self, key: Hashable, work: Work) -> None:
        previous = self._tails.get(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = done
        try:
            if previous is not None:
                await asyncio.shield(previous)
            await work()
        finally:
            done.set_result(None)
            if self._tails.get(key) is done:
                del self._tails[key]
