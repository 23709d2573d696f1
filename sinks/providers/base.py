"""What every provider sender returns, and the guard that keeps ``send`` from raising.

Senders are plain async code (no Faust): a sink hands one ``Delivery`` to a ``Sender`` and
gets a ``SendResult`` back, whatever the provider or the network did.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from logic.masking import mask_address
from schemas.notifications import Delivery

log = logging.getLogger("clarion.providers")

DETAIL_MAX_CHARS = 300


class Outcome(StrEnum):
    SENT = "sent"
    TRANSIENT = "transient"  # try again later (honour retry_after_s when given)
    PERMANENT = "permanent"  # retrying cannot help


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    # Short machine reason: "fcm:UNREGISTERED", "apns:BadDeviceToken", "twilio:21610",
    # "http_503", "timeout", "payload_too_large", ...
    reason: str | None = None
    # Human message from the provider; never the full address.
    detail: str | None = None
    provider_message_id: str | None = None
    # From Retry-After / X-RateLimit-Reset when the provider gave one.
    retry_after_s: float | None = None
    # The target is gone: dead token, invalid number, bounced address, webhook 410.
    remove_target: bool = False
    # The recipient replied STOP (Twilio 21610): record an SMS opt-out.
    opt_out: bool = False

    @property
    def sent(self) -> bool:
        return self.outcome is Outcome.SENT


class Sender(Protocol):
    provider: str  # "fcm" | "apns" | "sendgrid" | "twilio" | "webhook" | "push"

    async def send(self, delivery: Delivery) -> SendResult: ...

    async def aclose(self) -> None: ...


def sent(message_id: str | None = None) -> SendResult:
    return SendResult(Outcome.SENT, provider_message_id=message_id)


def transient(
    reason: str, detail: str | None = None, retry_after_s: float | None = None
) -> SendResult:
    return SendResult(Outcome.TRANSIENT, reason, detail, retry_after_s=retry_after_s)


def permanent(
    reason: str, detail: str | None = None, *, remove_target: bool = False, opt_out: bool = False
) -> SendResult:
    return SendResult(
        Outcome.PERMANENT, reason, detail, remove_target=remove_target, opt_out=opt_out
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def ttl_seconds(delivery: Delivery, now: datetime | None = None) -> int | None:
    """Whole seconds until ``expires_at`` (at least 1); None when the delivery never expires."""
    if delivery.expires_at is None:
        return None
    left = (_aware(delivery.expires_at) - (now or datetime.now(UTC))).total_seconds()
    return max(1, math.ceil(left))


def is_expired(delivery: Delivery, now: datetime | None = None) -> bool:
    return delivery.expires_at is not None and _aware(delivery.expires_at) <= (
        now or datetime.now(UTC)
    )


def scrub(detail: str | None, *addresses: str) -> str | None:
    """Provider messages sometimes quote an address back: mask it, and keep it short.

    Several addresses for an answer shared by a batch (SendGrid personalizations), which may
    quote any of its recipients."""
    if detail is None:
        return None
    for address in addresses:
        if address and address in detail:
            detail = detail.replace(address, mask_address(address))
    return detail[:DETAIL_MAX_CHARS]


async def bounded(call: Awaitable[SendResult], provider: str, timeout_s: float) -> SendResult:
    """``call``'s result within ``timeout_s``; a timeout or anything it raises becomes a
    TRANSIENT result (the never-raise contract)."""
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for wraps every send in a task of its
        # own, a cost paid thousands of times a second.
        async with asyncio.timeout(timeout_s):
            return await call
    except TimeoutError:
        return transient("timeout", f"{provider}: no answer within {timeout_s}s")
    except Exception as exc:  # the contract: provider trouble is a result, not a raise
        log.warning("%s send failed unexpectedly", provider, exc_info=True)
        return transient(f"error:{type(exc).__name__}", str(exc))


def expired_result() -> SendResult:
    # Sending a notification about something already over does more harm than good.
    return permanent("expired", "expires_at passed before the send")


class GuardedSender(ABC):
    """Base for the provider senders: timeout, expiry, in-flight bound, never-raise guarantee.

    Subclasses implement ``_send`` and classify what they know; anything they let escape
    becomes TRANSIENT ``error:<ExceptionClass>``, and a send that outlives ``timeout_s``
    becomes TRANSIENT ``timeout``.

    ``max_in_flight``: at most that many sends run ``_send`` at once; the others wait for a
    slot here, in a plain FIFO semaphore, before their clock starts. Senders set it to what
    their HTTP client runs without queueing inside it (HTTP/1.1: its connections; HTTP/2:
    connections x streams each): an HTTP client's own queue costs far more per waiting
    request (httpcore rescans every queued request against every connection on each
    request and response, encode/httpcore#1035), and a request waiting there is already on
    its send timeout's clock, so a backlog would time out sends that never left.
    """

    provider: str = "unknown"

    def __init__(self, timeout_s: float, max_in_flight: int | None = None) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight is not None else None

    async def send(self, delivery: Delivery) -> SendResult:
        if self._slots is None or is_expired(delivery):
            return await self._guarded(delivery)
        # The wait for a slot is outside `_guarded`'s timeout: the timeout bounds the
        # request, not the queue in front of it.
        async with self._slots:
            return await self._guarded(delivery)

    async def _guarded(self, delivery: Delivery) -> SendResult:
        # (Again) once a slot is free: a delivery may expire while it waits for one.
        if is_expired(delivery):
            return expired_result()
        result = await bounded(self._send(delivery), self.provider, self.timeout_s)
        return replace(result, detail=scrub(result.detail, delivery.target.address))

    @abstractmethod
    async def _send(self, delivery: Delivery) -> SendResult: ...

    async def aclose(self) -> None:
        return None
