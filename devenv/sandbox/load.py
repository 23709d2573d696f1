"""How hard each provider is being hit: requests in flight now, the most at once, and the
client connections they came on (``GET /_sandbox/load``, ``Sandbox.load()``).

A sender that bounds its requests in flight, or spreads them over several connections, is
checked here from the server's side: what arrived, not what the client meant to send.
Counted from a request's arrival to its answer, injected latency included, so a fault rule
with ``latency_ms`` makes concurrency visible. Requests of several providers are counted
apart; FCM's OAuth token exchange is not a send and is not counted.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Provider:
    in_flight: int = 0
    peak_in_flight: int = 0
    requests: int = 0
    # The connections seen since the last reset; weak, so a closed one is not kept alive
    # (and a new connection object at a recycled address is not mistaken for it).
    connections: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    connections_seen: int = 0


class LoadMeter:
    """Thread-safe: the server's loop counts, tests and the HTTP view read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._providers: dict[str, _Provider] = {}

    def enter(self, provider: str, connection: object) -> None:
        """A request of ``provider`` arrived on ``connection`` (any weak-referenceable
        object, one per connection: the HTTP server's transport, the APNs server's HTTP/2
        session)."""
        with self._lock:
            p = self._providers.setdefault(provider, _Provider())
            p.in_flight += 1
            p.requests += 1
            p.peak_in_flight = max(p.peak_in_flight, p.in_flight)
            if connection not in p.connections:
                p.connections.add(connection)
                p.connections_seen += 1

    def exit(self, provider: str) -> None:
        with self._lock:
            self._providers[provider].in_flight -= 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Per provider: ``in_flight``, ``peak_in_flight``, ``requests`` and ``connections``
        (distinct client connections that carried them) since the last reset."""
        with self._lock:
            return {
                name: {
                    "in_flight": p.in_flight,
                    "peak_in_flight": p.peak_in_flight,
                    "requests": p.requests,
                    "connections": p.connections_seen,
                }
                for name, p in self._providers.items()
            }

    def reset(self) -> None:
        """Start counting afresh; requests still in flight stay counted as in flight."""
        with self._lock:
            self._providers = {
                name: _Provider(in_flight=p.in_flight, peak_in_flight=p.in_flight)
                for name, p in self._providers.items()
            }
