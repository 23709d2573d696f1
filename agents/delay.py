"""Run each record of a topic at the time it names, without one waiting record holding up
the others: records wait side by side (up to CLARION_DELAY_QUEUE_LIMIT per agent) and are
acked in offset order once handled (streams/ackloop.py), so a restart resumes every one still
waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import faust

from logic.ackwindow import Work
from streams.ackloop import run_in_ack_order


async def run_when_due(
    stream: faust.StreamT[Any],
    due: Callable[[Any], datetime],
    handle: Callable[[Any], Awaitable[None]],
    owned: Callable[[Any], bool] = lambda _record: True,
    *,
    queue_limit: int,
) -> None:
    """`owned`: whether this worker's group acts on the record (logic/ownership.py); one it
    does not own is acked in its turn without waiting for its time. `queue_limit`: how many
    records wait at once (CLARION_DELAY_QUEUE_LIMIT)."""

    def work_for(event: faust.EventT) -> Work:
        value = event.value

        async def work() -> None:
            if not owned(value):
                return
            wait = due(value).timestamp() - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await handle(value)

        return work

    await run_in_ack_order(stream, queue_limit, work_for)
