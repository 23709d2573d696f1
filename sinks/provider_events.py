"""The providers' event webhooks on the worker: SendGrid's signed Event Webhook (bounces,
drops, spam reports, deliveries) becomes `feedback` records, acted on by agents/feedback.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from faust.web import View

from logic.provider_feedback import from_sendgrid
from sinks.client_auth import json_error as _error
from sinks.providers.sendgrid import SendGridSettings, parse_events

if TYPE_CHECKING:
    from sinks.context import SinkContext
    from streams.clarion_app import ClarionApp


def install(app: ClarionApp, ctx: SinkContext) -> None:
    topics = ctx.topics
    # Only SendGrid's settings: its event webhook's verification key.
    _sendgrid = SendGridSettings()

    @app.page("/providers/sendgrid/events")
    class SendGridEvents(View):  # type: ignore[misc]
        """SendGrid's signed Event Webhook: bounces, drops, spam reports, deliveries."""

        async def post(self, request: web.Request) -> web.Response:
            key = _sendgrid.sendgrid_webhook_public_key
            if not key:
                return _error(404, "CLARION_SENDGRID_WEBHOOK_PUBLIC_KEY is not set")
            body = await request.read()
            try:
                events = parse_events(
                    body,
                    request.headers.get("X-Twilio-Email-Event-Webhook-Signature", ""),
                    request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", ""),
                    key,
                )
            except ValueError as exc:
                return _error(403, str(exc))
            futures = [
                await topics.feedback.send(key=f.recipient_id.encode(), value=f)
                for f in from_sendgrid(events)
            ]
            for future in futures:
                await future
            return web.Response(status=204)
