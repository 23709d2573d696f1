"""Deliveries a sink makes in place: inside the stage that plans them, on the same event,
instead of through their delivery topic.

The in-app delivery of a critical notification is a table write (the inbox, co-partitioned
with the ingress topics) and a push to the SSE connections held by this worker: no provider
I/O that could block the lane. Made in place it saves a topic hop, about half of the
critical path's latency (docs/architecture.md, "Hops"). The sink registers the routes it can
serve in place (sinks/inapp.py); emit (agents/emit.py) asks here before sending.

The delivery record still goes to its topic, marked with IN_PLACE_HEADER, as the log of what
was delivered (tests, replays and operators read it); the sink's loader skips marked
records. The guarantee is the sink's own: the inbox write and the receipt are sent in the
same event as the record that planned them, and Faust commits that event's offset only
after the producer has flushed them all, so a crash re-runs the event and the inbox's
`contains` check skips what had already been stored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from schemas.common import Channel, Lane
from schemas.notifications import Delivery

# Returns the receipt's send future (resolves once the broker has it).
InPlace = Callable[[Delivery], Awaitable[Awaitable[Any]]]
IN_PLACE_HEADER = "clarion-delivered-in-place"
# What emit puts on a delivery record it made in place; `delivered_in_place` reads it.
IN_PLACE_HEADERS = [(IN_PLACE_HEADER, b"1")]


class InPlaceSinks:
    """The (channel, lane) routes this worker's sinks deliver in place."""

    def __init__(self) -> None:
        self._by_route: dict[tuple[Channel, Lane], InPlace] = {}

    def register(self, channel: Channel, lane: Lane, deliver: InPlace) -> None:
        self._by_route[(channel, lane)] = deliver

    def get(self, channel: Channel, lane: Lane) -> InPlace | None:
        return self._by_route.get((channel, lane))


def delivered_in_place(headers: Any) -> bool:
    """Whether a delivery record's headers (a list of pairs or a mapping) mark it as
    already delivered where it was planned."""
    pairs = headers.items() if isinstance(headers, dict) else (headers or ())
    return any(key == IN_PLACE_HEADER for key, _ in pairs)
