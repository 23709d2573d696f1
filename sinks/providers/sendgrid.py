"""Email through SendGrid v3 (``sendgrid`` SDK, synchronous: run on a dedicated pool).

Deliveries of the same mail -- same subject, text, HTML and sender; a marketing batch, an
announcement -- that are ready at the same moment go out as one ``mail/send`` request with
a personalization per delivery (up to 1,000, SendGrid's limit; CLARION_SENDGRID_BATCH_SIZE).
Each personalization carries its recipient, its own ``custom_args`` (the Clarion ids and
the delivery's attempt) and, when the deliveries' links differ, its link as a
``substitution``. ``send(delivery)`` still answers for one delivery, so the sink's claims,
ledger, receipts and acks stay per delivery (sinks/deliver.py); only the request is
shared. Batching never waits to fill a request: it takes what is ready (logic/coalesce.py),
and requests fill up because one mail has only one request on the wire at a time. For the
sink to have that many deliveries ready, the spec asks for ``2 x batch size`` sends in
flight (one request on the wire, the next one filling).

A 202 only means "queued": bounces and drops arrive later through the Event Webhook,
which echoes the personalization's ``custom_args`` in every event about its recipient.
``parse_events`` verifies and decodes such a webhook request.

A request that times out keeps its worker thread until the SDK's own (equal) socket
timeout ends it; the mail may still have been queued, so a retry can duplicate it (SendGrid
has no idempotency key) -- for every delivery of the request.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import logging
import time
import urllib.error
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from pydantic import Field, SecretStr
from python_http_client.exceptions import HTTPError
from sendgrid.helpers.eventwebhook import EventWebhook

from logic.coalesce import Coalescer
from schemas.common import Channel, Lane
from schemas.notifications import Delivery
from sinks.providers.base import (
    Outcome,
    SendResult,
    bounded,
    expired_result,
    is_expired,
    permanent,
    scrub,
    sent,
    transient,
)
from sinks.providers.config import SenderSettings
from sinks.providers.spec import ProviderSpec

log = logging.getLogger("clarion.providers")
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
            "paces its share (sinks/pacers.py, CLARION_PACE_SCOPE). Counted per delivery "
            "(recipient), not per request: batching changes the requests."
        ),
    )
    sendgrid_batch_size: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Deliveries (personalizations) per mail/send request at most; 1 = none.",
    )
    sendgrid_bulk_linger_ms: float = Field(
        default=1000.0,
        ge=0,
        le=10_000,
        description=(
            "How long bulk-lane (campaign) mail may wait for its request to fill up to the "
            "batch size; 0 = send what is ready. Other lanes never wait."
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


# SendGrid's limit of personalizations in one mail/send request (above it: a 400).
MAX_PERSONALIZATIONS = 1000
# A delivery's own link when the links of one request differ: SendGrid replaces each
# personalization's `substitutions` in the subject and content. Two tags because the HTML
# copy carries the link escaped.
URL_TAG = "-clarion_url-"
URL_HTML_TAG = "-clarion_url_html-"
_TAG_PREFIX = "-clarion_url"

# (subject, body, image_url, link) with link = True for "a link, each delivery its own".
MailKey = tuple[str, str, str | None, str | bool | None]


def _subject(delivery: Delivery) -> str:
    return delivery.title or delivery.body[:78]


def mail_key(delivery: Delivery) -> MailKey:
    """What a delivery's mail says apart from its recipient (and its link): deliveries with
    the same key can be one mail/send request, one personalization each."""
    subject = _subject(delivery)
    link: str | bool | None = delivery.url is not None
    if delivery.url is not None and (_TAG_PREFIX in subject or _TAG_PREFIX in delivery.body):
        # Text that happens to contain a tag would get the link substituted into it: such
        # deliveries share a request only with the same link, so no substitution is used.
        link = delivery.url
    return (subject, delivery.body, delivery.image_url, link)


def _personalization(delivery: Delivery, substitute: bool) -> dict[str, Any]:
    personalization: dict[str, Any] = {
        "to": [{"email": delivery.target.address}],
        # Echoed by the Event Webhook in every event about this recipient's mail
        # (agents/feedback.py): the per-delivery ids, and the attempt for the dead letter.
        "custom_args": {
            "clarion_delivery_id": delivery.delivery_id,
            "clarion_notification_id": delivery.notification_id,
            "clarion_recipient_id": delivery.recipient_id,
            "clarion_attempt": str(delivery.attempt),
        },
    }
    if substitute:
        url = delivery.url or ""
        personalization["substitutions"] = {URL_TAG: url, URL_HTML_TAG: html.escape(url)}
    return personalization


def build_request(deliveries: Sequence[Delivery], sender: str) -> dict[str, Any]:
    """One v3 mail/send body for deliveries of one ``mail_key``: the shared subject and
    content once, and a personalization per delivery with its address and custom_args (and
    its link as a substitution when their links differ).

    The documented JSON is built directly: the SDK's ``Mail`` helper would build and then
    serialise an object per recipient, address and custom arg for the same body.
    """
    if not 1 <= len(deliveries) <= MAX_PERSONALIZATIONS:
        raise ValueError(f"1 to {MAX_PERSONALIZATIONS} deliveries per request")
    first = deliveries[0]
    key = mail_key(first)
    if any(mail_key(d) != key for d in deliveries):
        raise ValueError("deliveries of one request must share their mail_key")
    substitute = first.url is not None and any(d.url != first.url for d in deliveries)
    text_url = URL_TAG if substitute else first.url
    html_url = URL_HTML_TAG if substitute else (html.escape(first.url) if first.url else None)
    text = first.body + (f"\n\n{text_url}" if text_url else "")
    parts = [f"<p>{html.escape(first.body)}</p>"]
    if first.image_url:
        parts.append(f'<p><img src="{html.escape(first.image_url)}" alt=""></p>')
    if html_url:
        parts.append(f'<p><a href="{html_url}">{html_url}</a></p>')
    return {
        "from": {"email": sender},
        "subject": _subject(first),
        "personalizations": [_personalization(d, substitute) for d in deliveries],
        "content": [
            {"type": "text/plain", "value": text},
            {"type": "text/html", "value": "\n".join(parts)},
        ],
    }


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


@dataclass(frozen=True)
class _Item:
    """A delivery waiting for a request; ``alone`` (a unique number) keeps it out of
    batches: the second try of a delivery whose batch SendGrid refused."""

    delivery: Delivery
    alone: int | None = None


def _batch_key(item: _Item) -> Hashable:
    if item.alone is not None:
        return ("alone", item.alone)
    return (item.delivery.lane is Lane.BULK, mail_key(item.delivery))


def _is_bulk(key: Hashable) -> bool:
    return isinstance(key, tuple) and key[0] is True


class SendGridSender:
    """``send(delivery)`` answers for that delivery alone, but deliveries of the same mail
    (``mail_key``) that are ready together go out as one request (``logic.coalesce``).

    A request's answer is every one of its deliveries' answer: 202 -> all sent with its
    X-Message-Id; 429/5xx/timeout -> all transient. A 400 on a request of several
    deliveries may name one bad address among many, so each of them is then sent again
    alone and gets its own answer: one bad address cannot fail the others.
    """

    provider = PROVIDER

    def __init__(
        self,
        *,
        api_key: str,
        email_from: str,
        base_url: str = "https://api.sendgrid.com",
        timeout_s: float = 10.0,
        threads: int = 16,
        batch_size: int = MAX_PERSONALIZATIONS,
        bulk_linger_s: float = 0.0,
    ) -> None:
        from sinks.providers.clients import sendgrid_client

        if not 1 <= batch_size <= MAX_PERSONALIZATIONS:
            raise ValueError(f"batch_size must be 1 to {MAX_PERSONALIZATIONS}")
        self.timeout_s = timeout_s
        self.email_from = email_from
        self._client = sendgrid_client(base_url, api_key, timeout_s)
        # The send timeout must bound the request, not its wait for a thread: counted from
        # the submission, a backlog (the sink runs hundreds of sends at once) timed out
        # requests already on the wire, and the retry sent the mail a second time. So a
        # request starts its clock only once it has one of `threads` slots (the
        # coalescer's max_in_flight), and its wait in the queue is never timed. The pool
        # has spare threads for those still held by a request that timed out (their socket
        # timeout ends them).
        self._pool = ThreadPoolExecutor(max_workers=2 * threads, thread_name_prefix="sendgrid")
        # One request per mail on the wire at a time: what arrives meanwhile goes in the
        # next one, so a campaign's requests fill up under load instead of splitting into
        # many small ones. Different mails (transactional email) still use every thread.
        self._batches: Coalescer[_Item, Hashable, SendResult | None] = Coalescer(
            self._send_batch,
            key=_batch_key,
            max_batch=batch_size,
            max_in_flight=threads,
            max_in_flight_per_key=1,
            # A campaign's mail (the bulk lane) may wait to fill its request; nothing else.
            linger=lambda key: bulk_linger_s if _is_bulk(key) else 0.0,
        )
        self._alone = itertools.count()

    @property
    def requests(self) -> int:
        """mail/send requests made so far (batches, including deliveries sent alone)."""
        return self._batches.batches

    async def send(self, delivery: Delivery) -> SendResult:
        if is_expired(delivery):
            return expired_result()
        try:
            result = await self._batches.submit(_Item(delivery))
            if result is None:  # its request was refused: this delivery alone, once more
                result = await self._batches.submit(_Item(delivery, next(self._alone)))
        except Exception as exc:  # the never-raise contract; _send_batch returns, not raises
            log.warning("sendgrid send failed unexpectedly", exc_info=True)
            result = transient(f"error:{type(exc).__name__}", str(exc))
        if result is None:  # a batch of one is never answered None; typing's sake
            result = transient("error:no_result", "sendgrid: no answer for the delivery")
        return replace(result, detail=scrub(result.detail, delivery.target.address))

    async def _send_batch(self, key: Hashable, items: list[_Item]) -> list[SendResult | None]:
        """One request for ``items`` (same key); one answer per item, None = "try alone"."""
        deliveries = [item.delivery for item in items]
        try:
            body = build_request(deliveries, self.email_from)
        except ValueError as exc:  # a bug, not the provider: never a silent drop
            return [transient("error:ValueError", str(exc))] * len(items)
        loop = asyncio.get_running_loop()
        result = await bounded(
            loop.run_in_executor(self._pool, self._post, body), self.provider, self.timeout_s
        )
        if len(items) > 1 and result.outcome is Outcome.PERMANENT and result.reason == "http_400":
            return [None] * len(items)
        if result.detail is not None and len(items) > 1:
            # Shared by every recipient of the request: mask any of them it quotes.
            result = replace(
                result, detail=scrub(result.detail, *(d.target.address for d in deliveries))
            )
        return [result] * len(items)

    def _post(self, body: dict[str, Any]) -> SendResult:
        # Runs on the pool: everything that can block or raise stays in here.
        try:
            response = self._client.send(body)
        except HTTPError as exc:
            return classify_sendgrid(int(exc.status_code), exc.headers, exc.body)
        except TimeoutError:
            return transient("timeout", "sendgrid: socket timeout")
        except (urllib.error.URLError, ConnectionError) as exc:
            return transient("connection_error", str(exc))
        return classify_sendgrid(int(response.status_code), response.headers)

    async def aclose(self) -> None:
        await self._batches.aclose()
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
        batch_size=cfg.sendgrid_batch_size,
        bulk_linger_s=cfg.sendgrid_bulk_linger_ms / 1000,
    )


SPEC = ProviderSpec(
    name=PROVIDER,
    channel=Channel.EMAIL,
    settings=SendGridSettings,
    configured=lambda cfg: cfg.sendgrid_api_key is not None,
    pace_per_s=lambda cfg: cfg.pace_sendgrid_per_s,
    build=_build,
    # One request on the wire per mail and the next one filling: 2 x batch size deliveries
    # in flight in the email sink, or requests stay half empty.
    max_in_flight=lambda cfg: 2 * cfg.sendgrid_batch_size,
)
