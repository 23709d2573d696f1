"""SendGrid v3 ``POST /v3/mail/send``: 202 on success, JSON ``errors`` on failure."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from devenv.sandbox.faults import FaultRule
from devenv.sandbox.state import SandboxState

PROVIDER = "sendgrid"
MAX_PERSONALIZATIONS = 1000


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


def setup(app: web.Application, state: SandboxState) -> None:
    async def mail_send(request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _errors(401, "The provided authorization grant is invalid, expired, or revoked")
        try:
            body = await request.json()
        except ValueError:
            return _errors(400, "Bad Request")
        personalizations = body.get("personalizations") if isinstance(body, dict) else None
        if not personalizations or len(personalizations) > MAX_PERSONALIZATIONS:
            return _errors(400, "The personalizations field must have 1 to 1000 items")
        recipients = _recipients(body)
        if not recipients:
            return _errors(400, "The to array is required for all personalization objects")
        fault = await state.apply_fault(PROVIDER, recipients, render_error)
        if fault is not None:
            return fault
        record = state.accept(PROVIDER, recipients[0], body, dict(request.headers))
        return web.Response(status=202, headers={"X-Message-Id": record.message_id})

    app.router.add_post("/v3/mail/send", mail_send)
