"""The connections a gateway holds, by user, and what each one is waiting to write."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from enum import Enum

from logic.presence import ReplayCursor
from schemas.presence import GatewayPush


class Signal(Enum):
    TICK = "tick"  # write a keepalive; give up waiting for a sync that never came
    CLOSE = "close"  # the gateway is stopping, or the client fell behind


Message = GatewayPush | Signal


class Connection:
    """One open SSE response. A client that cannot keep up is cut off rather than buffered
    without bound: it reconnects with Last-Event-ID and resumes from the inbox."""

    __slots__ = ("cursor", "opened_at", "overflowed", "queue", "user_id")

    def __init__(self, user_id: str, last_event_id: str | None, maxsize: int) -> None:
        self.user_id = user_id
        self.cursor = ReplayCursor(last_event_id)
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize)
        self.opened_at = time.monotonic()
        self.overflowed = False

    def offer(self, message: Message) -> bool:
        if self.overflowed:
            return False
        try:
            self.queue.put_nowait(message)
            return True
        except asyncio.QueueFull:
            if message is Signal.TICK:
                return False  # a full queue will write soon anyway
            self.overflowed = True
            _ = self.queue.get_nowait()  # room for the end-of-stream marker
            self.queue.put_nowait(Signal.CLOSE)
            return False


class Registry:
    """Connections by user. Every connect is announced (ONLINE: the worker answers with the
    inbox to replay from); the user's last disconnect here is announced too (OFFLINE)."""

    def __init__(
        self,
        on_online: Callable[[str], None],
        on_offline: Callable[[str], None],
        queue_size: int = 64,
    ) -> None:
        self._on_online = on_online
        self._on_offline = on_offline
        self._queue_size = queue_size
        self._by_user: dict[str, set[Connection]] = defaultdict(set)

    def open(self, user_id: str, last_event_id: str | None) -> Connection:
        conn = Connection(user_id, last_event_id, self._queue_size)
        self._by_user[user_id].add(conn)
        self._on_online(user_id)
        return conn

    def close(self, conn: Connection) -> None:
        conns = self._by_user.get(conn.user_id)
        if conns is None or conn not in conns:
            return
        conns.discard(conn)
        if not conns:
            del self._by_user[conn.user_id]
            self._on_offline(conn.user_id)

    def dispatch(self, push: GatewayPush) -> int:
        """Offer the push to every connection of its user; return how many took it."""
        return sum(conn.offer(push) for conn in self._by_user.get(push.user_id, ()))

    def broadcast(self, signal: Signal) -> None:
        for conns in self._by_user.values():
            for conn in conns:
                conn.offer(signal)

    def connections(self) -> int:
        return sum(len(c) for c in self._by_user.values())

    def users(self) -> int:
        return len(self._by_user)
