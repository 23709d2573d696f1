"""A webhook consumer: ``POST /webhooks/{name}`` records JSON bodies like a provider send.

The record's target is ``name`` (the last path segment), so faults are set per endpoint:
``sb.inject("webhook", target="shop", status=410)``. When ``state.webhook_secret`` is set
(the default; ``provider_env`` hands it to workers) the receiver verifies
``Clarion-Signature`` as a real consumer would and answers 401 to a bad one.
"""

from __future__ import annotations

from aiohttp import web

from devenv.sandbox.faults import FaultRule
from devenv.sandbox.state import SandboxState
from sinks.providers.webhook import SIGNATURE_HEADER, verify  # production's signing scheme

PROVIDER = "webhook"
PATH = "/webhooks/{name}"


def render_error(rule: FaultRule) -> web.Response:
    status = rule.status or 500
    headers = {"Retry-After": str(int(rule.retry_after_s))} if rule.retry_after_s else None
    body = {"error": rule.error or "sandbox injected fault"}
    return web.json_response(body, status=status, headers=headers)


def setup(app: web.Application, state: SandboxState) -> None:
    async def receive(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        raw = await request.read()
        secret = state.webhook_secret
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if secret is not None and not verify(secret, signature, raw):
            return web.json_response({"error": "bad or stale Clarion-Signature"}, status=401)
        try:
            payload = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        fault = await state.apply_fault(PROVIDER, [name], render_error)
        if fault is not None:
            return fault
        state.accept(PROVIDER, name, payload, dict(request.headers))
        return web.json_response({"ok": True})

    app.router.add_post(PATH, receive)
