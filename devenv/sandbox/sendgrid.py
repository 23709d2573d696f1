"""SendGrid v3 ``POST /v3/mail/send``: 202 on success, JSON ``errors`` on failure.

A request carries up to 1,000 personalizations; each accepted one is recorded as its own
send (one email per recipient), and every request received is counted
(``SendLog.requests``, ``GET /_sandbox/requests/count``).

Also the signed Event Webhook: a fault ``{"provider": "sendgrid", "target": addr,
"error": "bounce"}`` accepts the mail (202, recorded) and then POSTs a ``bounce`` event to
``state.sendgrid_event_webhook_url``, signed like SendGrid's signed Event Webhook: ECDSA
P-256 / SHA-256 over ``timestamp + body``, base64 DER signature in
``X-Twilio-Email-Event-Webhook-Signature``, the timestamp in ``...-Timestamp``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devenv.sandbox.faults import FaultRule
from devenv.sandbox.record import SendRecord
from devenv.sandbox.state import SandboxState

PROVIDER = "sendgrid"
MAX_PERSONALIZATIONS = 1000
MAX_REQUEST_BYTES = 30 * 1024 * 1024  # "total message size must be less than 30MB"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# Faults that accept the mail and report the failure later, through the Event Webhook.
EVENT_FAULTS = {"bounce": "550 5.1.1 The email account that you tried to reach does not exist"}

log = logging.getLogger("devenv.sandbox.sendgrid")


def _errors(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"errors": [{"message": message, "field": None, "help": None}]}
    return web.json_response(body, status=status, headers=headers)


def render_error(rule: FaultRule) -> web.Response:
    status = rule.status or 500
    headers: dict[str, str] = {}
    if status == 429:
        # SendGrid says when the window resets as an epoch second, not a delay.
        reset = int(time.time() + (rule.retry_after_s or 1))
        headers = {
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
        }
    return _errors(status, rule.error or "sandbox injected fault", headers)


def _recipients(body: dict[str, Any]) -> list[str]:
    return [
        to["email"]
        for p in body.get("personalizations") or []
        for to in p.get("to") or []
        if isinstance(to, dict) and "email" in to
    ]


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sign_events(key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> str:
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def _custom_args(mail: dict[str, Any], address: str) -> dict[str, str]:
    """The mail's custom_args, overridden by those of the personalization naming ``address``."""
    args = dict(mail.get("custom_args") or {})
    for p in mail.get("personalizations") or []:
        if any(to.get("email") == address for to in p.get("to") or []):
            args.update(p.get("custom_args") or {})
    return args


def bounce_events(record: SendRecord, addresses: list[str], reason: str) -> list[dict[str, Any]]:
    now = int(time.time())
    return [
        {
            # Custom args first: SendGrid's own fields win on a name clash.
            **_custom_args(record.payload, address),
            "email": address,
            "timestamp": now,
            "event": "bounce",
            "type": "bounce",
            "reason": reason,
            "status": "5.1.1",
            # Real sg_message_ids start with the X-Message-Id of the send.
            "sg_message_id": f"{record.message_id}.filter0001.sandbox.0",
            "sg_event_id": uuid.uuid4().hex,
            "smtp-id": f"<{record.message_id}@sandbox.sendgrid.net>",
        }
        for address in addresses
    ]


async def post_events(state: SandboxState, events: list[dict[str, Any]]) -> None:
    """POST one signed batch to the configured URL; a few quick retries, like SendGrid's."""
    url = state.sendgrid_event_webhook_url
    if not url:
        log.info("sendgrid event webhook URL not set: %d event(s) dropped", len(events))
        return
    body = json.dumps(events, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign_events(state.sendgrid_events_key, body, timestamp),
        TIMESTAMP_HEADER: timestamp,
    }
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt in range(3):
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    if response.status < 300:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2 * (attempt + 1))
    log.warning("sendgrid event webhook %s did not accept %d event(s)", url, len(events))


def setup(app: web.Application, state: SandboxState) -> None:
    async def mail_send(request: web.Request) -> web.Response:
        state.log.count_request(PROVIDER)
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _errors(401, "The provided authorization grant is invalid, expired, or revoked")
        if (request.content_length or 0) > MAX_REQUEST_BYTES:
            return _errors(413, "The total message size must be less than 30MB.")
        try:
            body = await request.json()
        except ValueError:
            return _errors(400, "Bad Request")
        personalizations = body.get("personalizations") if isinstance(body, dict) else None
        if not personalizations or len(personalizations) > MAX_PERSONALIZATIONS:
            return _errors(400, "The personalizations field must have 1 to 1000 items")
        recipients = _recipients(body)
        if not recipients or not all(
            _recipients({"personalizations": [p]}) for p in personalizations
        ):
            return _errors(400, "The to array is required for all personalization objects")
        # A fault naming one recipient fails (or delays) the whole request, as SendGrid
        # refuses a whole request over one bad address.
        rule = await state.delay_for_fault(PROVIDER, recipients)
        if rule is not None and rule.timeout:
            return web.Response(status=504, text="sandbox: hung request released")
        later = rule is not None and rule.status is None and rule.error in EVENT_FAULTS
        if rule is not None and rule.fails and not later:
            return render_error(rule)
        # One record per personalization -- one email per recipient, as SendGrid queues
        # them -- each with that personalization only, all with the request's X-Message-Id.
        message_id = uuid.uuid4().hex
        headers = dict(request.headers)
        records = [
            state.accept(
                PROVIDER,
                _recipients({"personalizations": [p]})[0],
                {**body, "personalizations": [p]},
                headers,
                message_id,
            )
            for p in personalizations
        ]
        if later:
            assert rule is not None and rule.error is not None
            reason = EVENT_FAULTS[rule.error]
            events = [
                event
                for record in records
                for event in bounce_events(
                    record,
                    [r for r in _recipients(record.payload) if rule.target in (None, r)],
                    reason,
                )
            ]
            state.spawn(post_events(state, events))
        return web.Response(status=202, headers={"X-Message-Id": message_id})

    app.router.add_post("/v3/mail/send", mail_send)
