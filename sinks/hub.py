"""In-process fan-out from the in-app sink to the SSE connections open on this worker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from schemas.notifications import InboxItem


class Subscription:
    """One open client connection. A client that cannot keep up is cut off rather than
    buffered without bound; it reconnects with Last-Event-ID and resumes from the inbox."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[InboxItem | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, item: InboxItem) -> bool:
        if self.overflowed:
            return False
        try:
            self.queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            self.overflowed = True
            # Make room for the end-of-stream marker so the reader wakes up and closes.
            _ = self.queue.get_nowait()
            self.queue.put_nowait(None)
            return False


class Hub:
    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    @contextmanager
    def subscribe(self, user_id: str) -> Iterator[Subscription]:
        sub = Subscription(self._queue_size)
        self._subscribers[user_id].add(sub)
        try:
            yield sub
        finally:
            subs = self._subscribers.get(user_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[user_id]

    def publish(self, user_id: str, item: InboxItem) -> int:
        """Offer the item to every connection of the user; return how many took it."""
        return sum(sub.offer(item) for sub in self._subscribers.get(user_id, ()))

    def connections(self) -> int:
        return sum(len(s) for s in self._subscribers.values())
