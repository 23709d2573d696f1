"""In-app over Server-Sent Events: each client sees its own user's notifications only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from logic.tokens import issue_token
from tests.factories import event_bytes
from tests.integration.conftest import TEST_SECRET, Pipeline
from tests.integration.kafka_io import produce

pytestmark = pytest.mark.integration


def token_for(user: str) -> str:
    return issue_token(user, TEST_SECRET, timedelta(minutes=10), datetime.now(UTC))


class SSEClient:
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.ids: list[str] = []
        self.connected = asyncio.Event()


@asynccontextmanager
async def sse(p: Pipeline, user: str, last_event_id: str | None = None) -> AsyncIterator[SSEClient]:
    client = SSEClient()
    headers = {"Authorization": f"Bearer {token_for(user)}"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id

    async def read() -> None:
        async with (
            httpx.AsyncClient(timeout=None, follow_redirects=True) as http,
            http.stream("GET", f"{p.url}/inapp/stream", headers=headers) as response,
        ):
            assert response.status_code == 200
            event_id = None
            async for line in response.aiter_lines():
                if line.startswith(": connected"):
                    client.connected.set()
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    client.events.append(json.loads(line[6:]))
                    client.ids.append(event_id or "")

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(client.connected.wait(), 10)
        yield client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_for(predicate, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_each_client_sees_only_its_own_users_notifications(
    pipeline: Pipeline, uid: str
) -> None:
    alice, bob = f"{uid}-alice", f"{uid}-bob"
    social = pipeline.topic("events.social")
    async with sse(pipeline, alice) as a, sse(pipeline, bob) as b:
        await produce(
            pipeline.bootstrap,
            social,
            [event_bytes(k, recipient_id=alice) for k in ("like", "follow", "mention")],
            key=alice.encode(),
        )
        await wait_for(lambda: len(a.events) == 3)
        # Three groups, three aggregation windows: they may close in any order.
        assert sorted(e["category"] for e in a.events) == ["follow", "like", "mention"]
        assert "Bob liked your photo" in {e["body"] for e in a.events}
        # Bob's connection is live (he gets his own) yet never saw Alice's three.
        await produce(
            pipeline.bootstrap, social, [event_bytes("follow", recipient_id=bob)], key=bob.encode()
        )
        await wait_for(lambda: len(b.events) == 1)
        assert b.events[0]["category"] == "follow"
        await asyncio.sleep(0.5)
        assert len(a.events) == 3


async def test_reconnecting_client_resumes_after_its_last_event_id(
    pipeline: Pipeline, uid: str
) -> None:
    social = pipeline.topic("events.social")
    async with sse(pipeline, uid) as first:
        await produce(
            pipeline.bootstrap, social, [event_bytes("like", recipient_id=uid)], key=uid.encode()
        )
        await wait_for(lambda: len(first.events) == 1)
    # Offline: two more arrive while nobody is connected.
    await produce(
        pipeline.bootstrap,
        social,
        [event_bytes("follow", recipient_id=uid), event_bytes("mention", recipient_id=uid)],
        key=uid.encode(),
    )
    await _wait_inbox_len(pipeline, uid, 3)
    async with sse(pipeline, uid, last_event_id=first.ids[0]) as again:
        await wait_for(lambda: len(again.events) == 2)
        assert sorted(e["category"] for e in again.events) == ["follow", "mention"]


async def test_missing_or_forged_token_is_refused(pipeline: Pipeline) -> None:
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{pipeline.url}/inapp/stream")).status_code == 401
        forged = issue_token("alice", "x" * 40, timedelta(minutes=5), datetime.now(UTC))
        r = await http.get(f"{pipeline.url}/inapp/stream", params={"token": forged})
        assert r.status_code == 401
        assert "invalid token" in r.json()["error"]


async def _wait_inbox_len(p: Pipeline, uid: str, n: int) -> None:
    from tests.integration.kafka_io import collect

    await collect(
        p.bootstrap,
        [f"{p.app_id}-inbox-changelog"],
        until=lambda kept: bool(kept) and len(json.loads(kept[-1].value)) >= n,
        keep=lambda r: r.key == uid.encode() and r.value is not None,
    )
