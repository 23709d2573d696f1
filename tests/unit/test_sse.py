"""The SSE framing both in-app servers share (sinks/sse.py): the bytes clients parse."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from schemas.notifications import InboxItem
from sinks import sse


def item(item_id: str) -> InboxItem:
    return InboxItem.model_validate(
        {
            "id": item_id,
            "seq": 1,
            "notification_id": item_id,
            "category": "message",
            "lane": "high",
            "title": "Bob",
            "body": "hey",
            "created_at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
        }
    )


def test_frames_are_the_ones_clients_parse() -> None:
    a, b = item("n1"), item("n2")
    assert sse.frame(a) == f"id: n1\nevent: notification\ndata: {a.model_dump_json()}\n\n".encode()
    assert sse.frames([a, b]) == sse.frame(a) + sse.frame(b)
    assert sse.frames([]) == b""
    assert (sse.CONNECTED, sse.KEEPALIVE) == (b": connected\n\n", b": keepalive\n\n")
    assert sse.comment("synced") == b": synced\n\n"


def test_resume_point_header_first_then_query() -> None:
    both = make_mocked_request(
        "GET", "/inapp/stream?last_event_id=q", headers={"Last-Event-ID": "h"}
    )
    assert sse.last_event_id(both) == "h"
    assert sse.last_event_id(make_mocked_request("GET", "/inapp/stream?last_event_id=q")) == "q"
    assert sse.last_event_id(make_mocked_request("GET", "/inapp/stream")) is None


async def test_open_stream_sends_the_event_stream_headers() -> None:
    request = make_mocked_request("GET", "/inapp/stream")
    response = await sse.open_stream(request)
    assert isinstance(response, web.StreamResponse) and response.prepared
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert sse.HEADERS["Content-Type"] == "text/event-stream"  # not mutated by aiohttp
