"""Thread-safe log of every send the sandbox ACCEPTED.

The server runs on its own event-loop thread while tests and benchmarks read the
log from theirs, so every access goes through one lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SendRecord:
    """One accepted send, as the provider would have queued it."""

    provider: str
    target: str
    payload: Any
    headers: dict[str, str]
    message_id: str
    # Wall-clock seconds: comparable across processes (the HTTP view is read by others).
    received_at: float = field(default_factory=time.time)

    @property
    def idempotency_key(self) -> str | None:
        """The client's de-duplication key, whichever header the provider uses for it."""
        for name in ("Idempotency-Key", "I-Twilio-Idempotency-Token", "apns-id"):
            for key, value in self.headers.items():
                if key.lower() == name.lower():
                    return value
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["idempotency_key"] = self.idempotency_key
        return data


class SendLog:
    """Append-only (until cleared) list of accepted sends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[SendRecord] = []

    def add(self, record: SendRecord) -> None:
        with self._lock:
            self._records.append(record)

    def sends(self, provider: str | None = None, target: str | None = None) -> list[SendRecord]:
        # A copy, so callers can iterate while the server keeps appending.
        with self._lock:
            return [
                r
                for r in self._records
                if (provider is None or r.provider == provider)
                and (target is None or r.target == target)
            ]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
