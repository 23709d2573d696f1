"""Server-Sent Events as both in-app servers write them: the worker's `/inapp/stream`
(sinks/inapp_web.py) and the gateway's (sinks/gateway/server.py). One module, so a client (the
inbox page, tests/integration/test_inapp_sse.py, test_gateway.py) reads the same frames,
headers and resume rule from either."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from schemas.notifications import InboxItem

# A comment line this often keeps proxies and load balancers from closing an idle stream.
KEEPALIVE_S = 15.0
# No caching, and no buffering by nginx-style proxies (X-Accel-Buffering), or frames would
# wait in a proxy instead of reaching the client.
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def comment(text: str) -> bytes:
    """A comment frame (`: connected`, `: keepalive`, `: synced`): EventSource ignores it."""
    return f": {text}\n\n".encode()


CONNECTED = comment("connected")
KEEPALIVE = comment("keepalive")


def frame(item: InboxItem) -> bytes:
    """One notification event; its id is what the client resumes after (Last-Event-ID)."""
    return f"id: {item.id}\nevent: notification\ndata: {item.model_dump_json()}\n\n".encode()


def frames(items: Iterable[InboxItem]) -> bytes:
    return b"".join(frame(item) for item in items)


def last_event_id(request: web.Request) -> str | None:
    """Where the client resumes: the `Last-Event-ID` header (EventSource's reconnect), else
    the `last_event_id` query (the inbox page's first connection)."""
    return request.headers.get("Last-Event-ID") or request.query.get("last_event_id")


async def open_stream(request: web.Request) -> web.StreamResponse:
    """The prepared (headers sent) event-stream response."""
    response = web.StreamResponse(headers=dict(HEADERS))
    await response.prepare(request)
    return response
