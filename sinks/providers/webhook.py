"""Signed JSON webhooks to the URL in ``delivery.target.address`` (httpx).

Signature (Stripe style): ``Clarion-Signature: t=<unix s>,v1=<hex HMAC-SHA256>`` over
``f"{t}.".encode() + body``. Consumers verify with ``verify`` (or its equivalent), which
also rejects stale timestamps, so a captured request cannot be replayed later.

One ``httpx.AsyncClient`` for all targets, at most ``webhook_max_connections`` sends in
flight (``GuardedSender``'s ``max_in_flight``): the rest wait for a slot in front of the
client, off their send timeout's clock, so nothing queues inside the client's pool.

Beneath the client, ``webhook_transport`` chooses what carries the requests:
- ``aiohttp`` (the default; ``clients.aiohttp_transport``): one aiohttp connector of
  ``webhook_max_connections`` connections, all kept alive, HTTP/1.1. It costs the least
  CPU per send (llhttp parses in C); the SDK path reached 0.35-0.38 of the lean client's
  rate, against 0.21-0.28 through httpcore (benchmarks/RESULTS.md).
- ``httpcore`` (httpx's own transport, ``clients.PooledTransport``): HTTP/2 where an https
  target offers it (ALPN; plain http stays HTTP/1.1, as httpx does not try h2c), in pools of
  ``webhook_pool_size``. httpcore scans a whole pool on every request and response (its cost
  grows with connections x queued requests, encode/httpcore#1035), so the connections are
  split into small pools, every one kept alive (httpcore 1.0 closes an idle connection
  whenever the pool holds more than ``max_keepalive_connections`` *in all*).

The client skips the cookie jar for responses without ``Set-Cookie``
(``clients.CookielessResponses``): 11 % of a send's CPU went to wrapping each response for it.

Order per target is the sink's business (``sinks/deliver.ORDERED``: a target's next
delivery starts only after the previous one finished); the slots are first come, first
served and never reorder what the sink hands over.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from pydantic import Field, SecretStr

from schemas.common import Channel
from schemas.notifications import Delivery
from sinks.providers.base import (
    GuardedSender,
    SendResult,
    parse_retry_after,
    permanent,
    sent,
    transient,
)
from sinks.providers.clients import HttpTransport, http_transport, skip_cookieless_responses
from sinks.providers.config import SenderSettings
from sinks.providers.spec import ProviderSpec

PROVIDER = "webhook"
SIGNATURE_HEADER = "Clarion-Signature"
TIMESTAMP_HEADER = "Clarion-Timestamp"
DELIVERY_ID_HEADER = "Clarion-Delivery-Id"
BODY_FIELDS = frozenset({
    "delivery_id", "notification_id", "recipient_id", "category", "lane", "title", "body",
    "url", "image_url", "data", "count", "occurred_at", "created_at",
})  # fmt: skip


class WebhookSettings(SenderSettings):
    webhook_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description=(
            "HMAC-SHA256 secret that signs outgoing webhooks (Clarion-Signature). Unset: the "
            "webhook channel is not configured and goes to the console outbox."
        ),
    )
    webhook_max_connections: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description=(
            "Connections of the webhook HTTP client (all kept alive), and the most webhook "
            "sends in flight per worker: more wait for a free one, off the send timeout."
        ),
    )
    webhook_transport: HttpTransport = Field(
        default="aiohttp",
        description="What carries the webhook client's requests: aiohttp (HTTP/1.1, the "
        "least CPU per send) or httpcore (httpx's own, HTTP/2 where an https target offers "
        "it, in pools of webhook_pool_size).",
    )
    webhook_pool_size: int = Field(
        default=4,
        ge=1,
        le=10_000,
        description="With webhook_transport=httpcore, connections per httpx pool: the "
        "webhook connections are split into ceil(webhook_max_connections / "
        "webhook_pool_size) pools.",
    )
    pace_webhook_per_s: float = Field(
        default=1_000.0,
        gt=0,
        description=(
            "Webhook sends/s of the whole deployment, all endpoints together; each worker "
            "paces its share (sinks/pacers.py, CLARION_PACE_SCOPE)."
        ),
    )


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _digest(secret: str | bytes, ts: int, body: bytes) -> str:
    return hmac.new(_key(secret), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, ts: int, body: bytes) -> str:
    """The ``Clarion-Signature`` header value for ``body`` sent at unix time ``ts``."""
    return f"t={ts},v1={_digest(secret, ts, body)}"


def verify(
    secret: str | bytes,
    header: str,
    body: bytes,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is at most ``tolerance_s`` old."""
    ts: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            ts = int(value)
        elif key == "v1":
            candidates.append(value)  # several during a secret rotation
    if ts is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    expected = _digest(secret, ts, body)
    # compare_digest on every candidate: constant time whatever matches.
    return any([hmac.compare_digest(expected, c) for c in candidates])


def webhook_body(delivery: Delivery) -> bytes:
    fields: dict[str, Any] = delivery.model_dump(mode="json", include=set(BODY_FIELDS))
    return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()


def classify_webhook(status: int, headers: Any = None) -> SendResult:
    """Map the consumer's HTTP answer to a result (pure: no I/O)."""
    if 200 <= status < 300:
        return sent()
    retry_after = parse_retry_after(headers.get("Retry-After")) if headers is not None else None
    if status == 410:
        return permanent("http_410", "endpoint disabled by consumer", remove_target=True)
    if status == 413:
        return permanent("payload_too_large", "consumer refused the body size")
    if status in (408, 429) or status >= 500:
        return transient(f"http_{status}", None, retry_after)
    return permanent(f"http_{status}")


class WebhookSender(GuardedSender):
    provider = PROVIDER

    def __init__(
        self,
        *,
        secret: str,
        timeout_s: float = 10.0,
        max_connections: int = 100,
        pool_size: int = 4,
        transport: HttpTransport = "aiohttp",
    ) -> None:
        # No more sends in flight than connections: none ever waits inside httpx's pool.
        super().__init__(timeout_s, max_in_flight=max_connections)
        self._secret = secret.encode()
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            # aiohttp's connector, or httpcore pools of `pool_size` speaking HTTP/2 where the
            # target offers it; every connection kept alive (see the module docstring).
            transport=http_transport(transport, max_connections, pool_size),
            # A redirect is the consumer's misconfiguration; following it would send the
            # signed body somewhere nobody verified.
            follow_redirects=False,
            headers={"User-Agent": "Clarion-Webhook/1"},
        )
        skip_cookieless_responses(self._client)

    async def _send(self, delivery: Delivery) -> SendResult:
        body = webhook_body(delivery)
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            DELIVERY_ID_HEADER: delivery.delivery_id,
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(self._secret, ts, body),
        }
        try:
            response = await self._client.post(
                delivery.target.address, content=body, headers=headers
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return permanent("webhook:invalid_url", str(exc))
        except httpx.TimeoutException:
            return transient("timeout", "webhook: consumer did not answer in time")
        except httpx.TransportError as exc:
            return transient("connection_error", f"{type(exc).__name__}: {exc}")
        return classify_webhook(response.status_code, response.headers)

    async def aclose(self) -> None:
        await self._client.aclose()


def _build(cfg: WebhookSettings) -> WebhookSender:
    assert cfg.webhook_secret is not None  # `configured` says so
    return WebhookSender(
        secret=cfg.webhook_secret.get_secret_value(),
        timeout_s=cfg.send_timeout_s,
        max_connections=cfg.webhook_max_connections,
        pool_size=cfg.webhook_pool_size,
        transport=cfg.webhook_transport,
    )


SPEC = ProviderSpec(
    name=PROVIDER,
    channel=Channel.WEBHOOK,
    settings=WebhookSettings,
    configured=lambda cfg: cfg.webhook_secret is not None,
    pace_per_s=lambda cfg: cfg.pace_webhook_per_s,
    build=_build,
)
