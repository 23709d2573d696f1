"""Email through SendGrid v3 (``sendgrid`` SDK, synchronous: run on a dedicated pool).

A 202 only means "queued": bounces and drops arrive later through the Event Webhook,
which echoes the mail's ``custom_args`` -- the Clarion ids and the delivery's attempt set
here -- in every event.
``parse_events`` verifies and decodes such a webhook request.

A send that times out keeps its worker thread until the SDK's own (equal) socket timeout
ends it; the mail may still have been queued, so a retry can duplicate it (SendGrid has no
idempotency key).
"""

from __future__ import annotations

import asyncio
import html
import json
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import Field, SecretStr
from python_http_client.exceptions import HTTPError
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.mail import CustomArg, Mail

from schemas.common import Channel
from schemas.notifications import Delivery
from sinks.providers.base import GuardedSender, SendResult, permanent, sent, transient
from sinks.providers.config import SenderSettings
from sinks.providers.spec import ProviderSpec

PROVIDER = "sendgrid"


class SendGridSettings(SenderSettings):
    sendgrid_api_key: SecretStr | None = Field(
        default=None, description="SendGrid API key; unset = email not configured."
    )
    sendgrid_url: str = Field(
        default="https://api.sendgrid.com", description="SendGrid API base URL."
    )
    sendgrid_webhook_public_key: str | None = Field(
        default=None,
        description="Event Webhook verification key (base64 DER, as SendGrid shows it).",
    )
    email_from: str = Field(
        default="notifications@example.com", description="From address of every email."
    )
    pace_sendgrid_per_s: float = Field(
        default=600.0,
        gt=0,
        description=(
            "SendGrid mail sends/s of the whole deployment (the account's limit); each worker "
            "paces its share (sinks/pacers.py, CLARION_PACE_SCOPE)."
        ),
    )


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    return None if value is None else str(value)


def _first_error(body: bytes | str | None) -> str | None:
    if not body:
        return None
    try:
        errors = json.loads(body).get("errors") or []
        return str(errors[0].get("message")) if errors else None
    except (ValueError, AttributeError, IndexError, TypeError):
        return (body.decode(errors="replace") if isinstance(body, bytes) else body)[:200]


def classify_sendgrid(
    status: int, headers: Any = None, body: bytes | str | None = None, now: float | None = None
) -> SendResult:
    """Map a SendGrid HTTP answer to a result (pure: no I/O)."""
    if 200 <= status < 300:
        return sent(_header(headers, "X-Message-Id"))
    detail = _first_error(body)
    if status == 429:
        reset = _header(headers, "X-RateLimit-Reset")  # epoch seconds, not a delay
        retry_after = None
        if reset and reset.strip().isdigit():
            retry_after = max(0.0, int(reset) - (time.time() if now is None else now))
        return transient("http_429", detail, retry_after)
    if status >= 500 or status == 408:
        return transient(f"http_{status}", detail)
    if status == 413:
        return permanent("payload_too_large", detail)
    if status in (401, 403):
        return transient(f"http_{status} (credential)", detail)
    return permanent(f"http_{status}", detail)


def build_mail(delivery: Delivery, sender: str) -> Mail:
    text = delivery.body + (f"\n\n{delivery.url}" if delivery.url else "")
    parts = [f"<p>{html.escape(delivery.body)}</p>"]
    if delivery.image_url:
        parts.append(f'<p><img src="{html.escape(delivery.image_url)}" alt=""></p>')
    if delivery.url:
        url = html.escape(delivery.url)
        parts.append(f'<p><a href="{url}">{url}</a></p>')
    mail = Mail(
        from_email=sender,
        to_emails=delivery.target.address,
        subject=delivery.title or delivery.body[:78],
        plain_text_content=text,
        html_content="\n".join(parts),
    )
    mail.custom_arg = [
        CustomArg("clarion_delivery_id", delivery.delivery_id),
        CustomArg("clarion_notification_id", delivery.notification_id),
        CustomArg("clarion_recipient_id", delivery.recipient_id),
        CustomArg("clarion_attempt", str(delivery.attempt)),
    ]
    return mail


def parse_events(
    body: bytes, signature: str, timestamp: str, public_key: str
) -> list[dict[str, Any]]:
    """Verify a signed Event Webhook request and return its events.

    ``signature``/``timestamp`` are the X-Twilio-Email-Event-Webhook-Signature/-Timestamp
    headers; ``public_key`` is the verification key SendGrid shows (base64 DER).
    Raises ValueError when the signature, key or body is bad.
    """
    try:
        verifier = EventWebhook(public_key)
        ok = verifier.verify_signature(body.decode(), signature, timestamp)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot verify event webhook: {exc}") from exc
    if not ok:
        raise ValueError("event webhook signature does not match")
    events = json.loads(body)
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ValueError("event webhook body is not a list of events")
    return events


class SendGridSender(GuardedSender):
    provider = PROVIDER

    def __init__(
        self,
        *,
        api_key: str,
        email_from: str,
        base_url: str = "https://api.sendgrid.com",
        timeout_s: float = 10.0,
        threads: int = 16,
    ) -> None:
        from sinks.providers.clients import sendgrid_client

        super().__init__(timeout_s)
        self.email_from = email_from
        self._client = sendgrid_client(base_url, api_key, timeout_s)
        # The send timeout must bound the request, not its wait for a thread: counted from
        # the submission, a backlog (the sink runs hundreds of sends at once) timed out
        # requests already on the wire, and the retry sent the mail a second time. So a send
        # starts its clock only once a thread is free. The pool has spare threads for those
        # still held by a request that timed out (their socket timeout ends them).
        self._free = asyncio.Semaphore(threads)
        self._pool = ThreadPoolExecutor(max_workers=2 * threads, thread_name_prefix="sendgrid")

    async def send(self, delivery: Delivery) -> SendResult:
        async with self._free:
            return await super().send(delivery)

    def _post(self, mail: Mail) -> SendResult:
        # Runs on the pool: everything that can block or raise stays in here.
        try:
            response = self._client.send(mail)
        except HTTPError as exc:
            return classify_sendgrid(int(exc.status_code), exc.headers, exc.body)
        except TimeoutError:
            return transient("timeout", "sendgrid: socket timeout")
        except (urllib.error.URLError, ConnectionError) as exc:
            return transient("connection_error", str(exc))
        return classify_sendgrid(int(response.status_code), response.headers)

    async def _send(self, delivery: Delivery) -> SendResult:
        mail = build_mail(delivery, self.email_from)
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._post, mail)

    async def aclose(self) -> None:
        # Don't wait for stuck threads: their socket timeout ends them.
        self._pool.shutdown(wait=False, cancel_futures=True)


def _build(cfg: SendGridSettings) -> SendGridSender:
    assert cfg.sendgrid_api_key is not None  # `configured` says so
    return SendGridSender(
        api_key=cfg.sendgrid_api_key.get_secret_value(),
        email_from=cfg.email_from,
        base_url=cfg.sendgrid_url,
        timeout_s=cfg.send_timeout_s,
        threads=cfg.sync_threads,
    )


SPEC = ProviderSpec(
    name=PROVIDER,
    channel=Channel.EMAIL,
    settings=SendGridSettings,
    configured=lambda cfg: cfg.sendgrid_api_key is not None,
    pace_per_s=lambda cfg: cfg.pace_sendgrid_per_s,
    build=_build,
)
