"""The one loop that drives an `AckWindow` (logic/ackwindow.py) from a Faust stream: the
delay agents (agents/delay.py: retry, escalate). The provider sinks drive theirs from a
topic loader (streams/topic_loader.py, sinks/deliver.py).

The stream is read with `noack()`, so Faust never acks a record when the loop moves past it;
the window acks each record once its work and every earlier record's of its partition have
finished, so the committed offset never passes unfinished work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from logic.ackwindow import AckWindow, Work

if TYPE_CHECKING:
    import faust


async def run_in_ack_order(
    stream: faust.StreamT[Any], limit: int, work_for: Callable[[faust.EventT], Work]
) -> None:
    """Hand each event's work (`work_for(event)`) to a task, at most `limit` at once (the
    loop waits for a slot: back-pressure on the consumer), acking events in offset order.

    `work_for` is called, and the task created, inside the iteration, so the work inherits
    Faust's current event: its table writes go to the event's own changelog partition.
    """
    window: AckWindow[faust.EventT] = AckWindow(
        limit,
        ack=lambda event: event.ack(),
        partition_of=lambda event: event.message.tp,
    )
    # StreamT's stub lacks noack().
    async for event in stream.noack().events():  # type: ignore[attr-defined]
        await window.submit(event, work_for(event))
