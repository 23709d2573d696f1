"""The worker's HTTP views: in-app Server-Sent Events and a readiness probe."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from faust.web import View

from logic.inbox import items_after
from logic.tokens import InvalidToken, verify_token
from schemas.notifications import InboxItem
from sinks.inapp import hub
from streams.app import app
from tables.state import inbox

_KEEPALIVE_S = 15.0
_WAKE_S = 1.0


def _sse(item: InboxItem) -> bytes:
    return f"id: {item.id}\nevent: notification\ndata: {item.model_dump_json()}\n\n".encode()


def _token_from(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth.removeprefix("Bearer ").strip()
    # EventSource cannot set headers, so browsers pass the token in the query string.
    return request.query.get("token")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@app.page("/inapp/stream")
class InAppStream(View):  # type: ignore[misc]
    """GET /inapp/stream?token=… — the signed-in user's notifications as they arrive.

    Resumes after `Last-Event-ID` (header, or `last_event_id` query) from the inbox table.
    A user is served by the worker that owns their partition; any other worker redirects.
    """

    async def get(self, request: web.Request) -> web.StreamResponse:
        token = _token_from(request)
        if not token:
            return _error(401, "missing token (Authorization: Bearer … or ?token=…)")
        try:
            user_id = verify_token(token, app.settings.inapp_token_secret.get_secret_value())
        except InvalidToken as exc:
            return _error(401, f"invalid token: {exc}")
        key = user_id.encode()
        try:
            owner = app.router.key_store(inbox.name, key)
        except Exception:  # no assignment yet (starting or rebalancing)
            return _error(503, "worker is not ready; retry")
        if str(owner).rstrip("/") != str(app.conf.canonical_url).rstrip("/"):
            raise web.HTTPTemporaryRedirect(str(owner).rstrip("/") + request.path_qs)

        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        last_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
        with hub.subscribe(user_id) as sub:
            # Subscribe first, then replay: an item arriving in between is seen twice at
            # worst (filtered by id below), never missed.
            sent: set[str] = set()
            for item in items_after(inbox.get(key) or [], last_id):
                await response.write(_sse(item))
                sent.add(item.id)
            await response.write(b": connected\n\n")
            idle_s = 0.0
            # Wake every second so a stopping worker closes its streams at once (clients
            # reconnect to the new owner) instead of at the next keepalive.
            while not app.should_stop:
                try:
                    next_item = await asyncio.wait_for(sub.queue.get(), _WAKE_S)
                except TimeoutError:
                    idle_s += _WAKE_S
                    if idle_s >= _KEEPALIVE_S:
                        await response.write(b": keepalive\n\n")
                        idle_s = 0.0
                    continue
                if next_item is None:  # too slow: end the stream; the client resumes
                    break
                if next_item.id not in sent:
                    await response.write(_sse(next_item))
        return response


@app.page("/health")
class Health(View):  # type: ignore[misc]
    """Readiness: 200 once tables are recovered and partitions are assigned."""

    async def get(self, request: web.Request) -> web.Response:
        assigned = len(app.consumer.assignment()) if app.consumer else 0
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        body: dict[str, Any] = {
            "ready": bool(recovered and assigned and not app.rebalancing),
            "assigned_partitions": assigned,
            "sse_connections": hub.connections(),
        }
        return web.Response(
            text=json.dumps(body),
            status=200 if body["ready"] else 503,
            content_type="application/json",
        )
