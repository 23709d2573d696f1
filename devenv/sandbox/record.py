"""Thread-safe log of every send the sandbox ACCEPTED.

The server runs on its own event-loop thread while tests and benchmarks read the
log from theirs, so every access goes through one lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Where each provider carries the Clarion delivery id (see sinks/providers).
DELIVERY_ID_KEY = "clarion_delivery_id"


@dataclass(frozen=True)
class SendRecord:
    """One accepted send, as the provider would have queued it: for SendGrid one
    personalization (one recipient's email) of a request, so a request with 1,000 is 1,000
    records sharing its ``message_id`` (the X-Message-Id) and its headers."""

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
            value = self.header(name)
            if value is not None:
                return value
        return None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    @property
    def delivery_id(self) -> str | None:
        """The Clarion delivery id, wherever this provider carried it; None if absent.

        fcm: ``data.clarion_delivery_id``; apns: payload ``clarion_delivery_id``; sendgrid:
        ``custom_args.clarion_delivery_id`` (a personalization's, else the mail's); twilio:
        ``delivery_id`` in the StatusCallback query; webhook: the Clarion-Delivery-Id header.
        """
        payload = self.payload if isinstance(self.payload, dict) else {}
        found: object = None
        if self.provider == "fcm":
            found = (payload.get("data") or {}).get(DELIVERY_ID_KEY)
        elif self.provider == "apns":
            found = payload.get(DELIVERY_ID_KEY)
        elif self.provider == "sendgrid":
            for p in payload.get("personalizations") or []:
                found = found or ((p or {}).get("custom_args") or {}).get(DELIVERY_ID_KEY)
            found = found or (payload.get("custom_args") or {}).get(DELIVERY_ID_KEY)
        elif self.provider == "twilio":
            query = parse_qs(urlsplit(str(payload.get("StatusCallback") or "")).query)
            found = next(iter(query.get("delivery_id") or []), None)
        elif self.provider == "webhook":
            found = self.header("Clarion-Delivery-Id")
        return found if isinstance(found, str) and found else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["idempotency_key"] = self.idempotency_key
        data["delivery_id"] = self.delivery_id
        return data


class SendLog:
    """Append-only (until cleared) list of accepted sends, and a count of the requests
    that carry several sends (SendGrid: one mail/send request, many personalizations)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[SendRecord] = []
        self._requests: Counter[str] = Counter()

    def count_request(self, provider: str) -> None:
        """One request received, accepted or not (only providers that batch count them)."""
        with self._lock:
            self._requests[provider] += 1

    def requests(self, provider: str | None = None) -> int:
        with self._lock:
            if provider is None:
                return sum(self._requests.values())
            return self._requests[provider]

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

    def per_second(self, provider: str | None = None) -> dict[int, int]:
        """Accepted sends per wall-clock second (``int(received_at)``), in time order: what a
        provider's rate limiter sees (the pacing test reads its aggregate rate here)."""
        counts: dict[int, int] = {}
        for r in self.sends(provider):
            second = int(r.received_at)
            counts[second] = counts.get(second, 0) + 1
        return dict(sorted(counts.items()))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._requests.clear()
