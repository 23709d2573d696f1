"""The in-app client's HTTP side on the worker: the user's Server-Sent Events stream
(GET /inapp/stream) and the ack endpoint (POST /inapp/ack)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web
from faust.web import View
from pydantic import ValidationError

from logic.inbox import items_after
from schemas.control import Confirmation
from sinks import sse
from sinks.client_auth import json_error as _error
from sinks.client_auth import user_from
from tables import keys

if TYPE_CHECKING:
    from sinks.context import SinkContext
    from streams.clarion_app import ClarionApp

_WAKE_S = 1.0


def install(app: ClarionApp, ctx: SinkContext) -> None:
    topics, inbox, hub = ctx.topics, ctx.tables.inbox, ctx.hub

    def _user_from(request: web.Request) -> str | web.Response:
        return user_from(request, app.settings.inapp_token_secret.get_secret_value())

    @app.page("/inapp/stream")
    class InAppStream(View):  # type: ignore[misc]
        """GET /inapp/stream?token=… — the signed-in user's notifications as they arrive.

        Resumes after `Last-Event-ID` (header, or `last_event_id` query) from the inbox table.
        A user is served by the worker that owns their partition; any other worker redirects.
        """

        async def get(self, request: web.Request) -> web.StreamResponse:
            user_id = _user_from(request)
            if isinstance(user_id, web.Response):
                return user_id
            key = keys.user_key(user_id)
            try:
                owner = app.router.key_store(inbox.name, key)
            except Exception:  # no assignment yet (starting or rebalancing)
                return _error(503, "worker is not ready; retry")
            if str(owner).rstrip("/") != str(app.conf.canonical_url).rstrip("/"):
                raise web.HTTPTemporaryRedirect(str(owner).rstrip("/") + request.path_qs)

            response = await sse.open_stream(request)
            last_id = sse.last_event_id(request)
            with hub.subscribe(user_id) as sub:
                # Subscribe first, then replay: an item arriving in between is seen twice at
                # worst (filtered by id below), never missed.
                sent: set[str] = set()
                for item in items_after(inbox.get(key) or [], last_id):
                    await response.write(sse.frame(item))
                    sent.add(item.id)
                await response.write(sse.CONNECTED)
                idle_s = 0.0
                # Wake every second so a stopping worker closes its streams at once (clients
                # reconnect to the new owner) instead of at the next keepalive.
                while not app.should_stop:
                    try:
                        next_item = await asyncio.wait_for(sub.queue.get(), _WAKE_S)
                    except TimeoutError:
                        idle_s += _WAKE_S
                        if idle_s >= sse.KEEPALIVE_S:
                            await response.write(sse.KEEPALIVE)
                            idle_s = 0.0
                        continue
                    if next_item is None:  # too slow: end the stream; the client resumes
                        break
                    if next_item.id not in sent:
                        await response.write(sse.frame(next_item))
            return response

    @app.page("/inapp/ack")
    class InAppAck(View):  # type: ignore[misc]
        """POST /inapp/ack {"notification_ids": [...], "action": "seen"|"read"} — the client says
        what it showed or opened. `read` confirms: a critical notification stops escalating.

        Any worker takes it (it is produced to `confirmations`, keyed by the user); 202 means
        the broker has it.
        """

        async def post(self, request: web.Request) -> web.Response:
            user_id = _user_from(request)
            if isinstance(user_id, web.Response):
                return user_id
            try:
                body = await request.json()
                confirmation = Confirmation.model_validate(
                    {**body, "recipient_id": user_id, "at": datetime.now(UTC)}
                )
            except (ValueError, TypeError, ValidationError) as exc:
                return _error(400, f"bad ack: {exc}")
            await (await topics.confirmations.send(key=user_id.encode(), value=confirmation))
            return web.json_response({"accepted": len(confirmation.notification_ids)}, status=202)
