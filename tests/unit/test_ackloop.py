"""The shared AckWindow driver (streams/ackloop.py) of the provider sinks and the delay agents,
driven with a stand-in for a Faust stream: acks in offset order per partition, never before a
record's work is done, at most `limit` in flight, and the work sees the current event."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from logic.ackwindow import Work
from streams.ackloop import run_in_ack_order

# Stands in for Faust's current-event context variable, set while the stream yields.
CURRENT: contextvars.ContextVar[Event | None] = contextvars.ContextVar("current", default=None)


@dataclass(frozen=True)
class Message:
    tp: str
    offset: int


@dataclass(eq=False)
class Event:
    message: Message
    value: Any
    acked: list[Event] = field(default_factory=list)

    def ack(self) -> bool:
        self.acked.append(self)
        return True


class Stream:
    """`noack().events()` over a fixed list; records how far the consumer has read."""

    def __init__(self, events: list[Event]) -> None:
        self._events = events
        self.noacked = False
        self.read = 0

    def noack(self) -> Stream:
        self.noacked = True
        return self

    async def events(self) -> AsyncIterator[Event]:
        for event in self._events:
            self.read += 1
            token = CURRENT.set(event)
            try:
                yield event
            finally:
                CURRENT.reset(token)


def events(acked: list[Event], partitions: int, per_partition: int) -> list[Event]:
    return [
        Event(Message(f"t-{p}", o), (p, o), acked)
        for o in range(per_partition)
        for p in range(partitions)
    ]


async def test_acks_wait_for_the_work_and_follow_offsets_per_partition() -> None:
    acked: list[Event] = []
    gates = {(0, 0): asyncio.Event()}  # partition 0's first record is slow
    stream = Stream(events(acked, 2, 4))
    seen: list[Event | None] = []

    def work_for(event: Any) -> Work:
        async def work() -> None:
            seen.append(CURRENT.get() is event)  # type: ignore[arg-type]
            gate = gates.get(event.value)
            if gate is not None:
                await gate.wait()

        return work

    loop = asyncio.ensure_future(run_in_ack_order(stream, 16, work_for))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert stream.noacked, "the stream must be read with noack(): acks are the window's"
    # Partition 1 is acked in order; nothing of partition 0 passes its unfinished head.
    assert [e.message.offset for e in acked if e.message.tp == "t-1"] == [0, 1, 2, 3]
    assert [e for e in acked if e.message.tp == "t-0"] == []
    gates[(0, 0)].set()
    await loop
    await asyncio.sleep(0.01)
    assert [e.message.offset for e in acked if e.message.tp == "t-0"] == [0, 1, 2, 3]
    # The task was made inside the iteration: the work saw its own current event.
    assert seen == [True] * 8


async def test_the_loop_reads_no_further_while_limit_records_are_in_flight() -> None:
    acked: list[Event] = []
    release = asyncio.Event()
    stream = Stream(events(acked, 1, 10))

    def work_for(event: Any) -> Work:
        async def work() -> None:
            await release.wait()

        return work

    loop = asyncio.ensure_future(run_in_ack_order(stream, 3, work_for))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    # Three in flight and the fourth read, waiting for a slot (back-pressure on the consumer).
    assert stream.read == 4 and acked == []
    release.set()
    await loop
    await asyncio.sleep(0.01)
    assert [e.message.offset for e in acked] == list(range(10))


async def test_failed_work_is_retried_not_acked_past() -> None:
    acked: list[Event] = []
    stream = Stream(events(acked, 1, 3))
    tries = {0: 0}

    def work_for(event: Any) -> Work:
        async def work() -> None:
            if event.message.offset == 0:
                tries[0] += 1
                if tries[0] == 1:
                    raise RuntimeError("produce timed out")

        return work

    # AckWindow's retry waits 1 s before the second try.
    await asyncio.wait_for(run_in_ack_order(stream, 8, work_for), 1)  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert acked == []  # record 0 failed once: nothing after it is acked yet
    await asyncio.sleep(1.2)
    assert tries[0] == 2
    assert [e.message.offset for e in acked] == [0, 1, 2]
