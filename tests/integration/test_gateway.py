"""The gateway role: a real broker, a real worker (pushing to the provider sandbox) and real
`clarion gateway` processes. Connected → in-app through the gateway and no push; disconnected
(or the gateway dead, its lease run out) → a push as the wake-up signal, and the inbox
replays on the next open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devenv.gateway import GatewayProcess
from devenv.sandbox import Sandbox
from logic.tokens import issue_token
from schemas.common import Channel, Lane
from streams.catalog import delivery_topic
from tests.factories import event_dict
from tests.integration.conftest import TEST_SECRET, Pipeline
from tests.integration.delivery_env import (
    delivering_pipeline,
    fcm_token,
    records_where,
    set_contacts,
    wait_for_sends,
)
from tests.integration.kafka_io import collect, produce_json

pytestmark = pytest.mark.integration

LEASE_S = 4.0


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox
) -> Iterator[Pipeline]:
    with delivering_pipeline(kafka_bootstrap, tmp_path_factory.mktemp("gateway"), sandbox) as p:
        yield p


def start_gateway(p: Pipeline, tmp: Path, gateway_id: str) -> GatewayProcess:
    env = {**p.worker.env, "CLARION_GATEWAY_LEASE_S": str(LEASE_S)}
    return GatewayProcess(env, tmp / f"{gateway_id}.log", gateway_id)


@pytest.fixture(scope="module")
def gateway(
    pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with start_gateway(pipeline, tmp_path_factory.mktemp("gw"), "gw-main") as gw:
        yield gw


class Client:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.synced = asyncio.Event()


@asynccontextmanager
async def sse(base_url: str, user: str, last_event_id: str | None = None) -> AsyncIterator[Client]:
    """An SSE client of the gateway, yielded once the worker has answered its connect."""
    client = Client()
    token = issue_token(user, TEST_SECRET, timedelta(minutes=10), datetime.now(UTC))
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id

    async def read() -> None:
        async with (
            httpx.AsyncClient(timeout=None) as http,
            http.stream("GET", f"{base_url}/inapp/stream", headers=headers) as response,
        ):
            assert response.status_code == 200
            event_id = ""
            async for line in response.aiter_lines():
                if line.startswith(": synced"):
                    client.synced.set()
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    client.events.append(json.loads(line[6:]))
                    client.ids.append(event_id)

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(client.synced.wait(), 30)
        yield client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_until(predicate: Any, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def presence_of(p: Pipeline, uid: str, until: Any, timeout_s: float = 30) -> Any:
    """The user's latest row in the worker's presence table (its changelog), once `until`
    holds for it; None = deleted (offline everywhere)."""
    got = await collect(
        p.bootstrap,
        [f"{p.app_id}-presence-changelog"],
        until=lambda kept: bool(kept) and until(_row(kept[-1].value)),
        keep=lambda r: r.key == uid.encode(),
        timeout_s=timeout_s,
    )
    assert got, "no presence row for the user"
    row = _row(got[-1].value)
    assert until(row), f"presence row {row!r}"
    return row


def _row(value: bytes | None) -> Any:
    return None if value is None else json.loads(value)


async def send_message(p: Pipeline, uid: str, preview: str) -> str:
    event = event_dict("message", recipient_id=uid, preview=preview)
    await produce_json(p.bootstrap, p.topic("events.messaging"), event, uid)
    return str(event["event_id"])


async def push_deliveries(p: Pipeline, uid: str, timeout_s: float) -> list[Any]:
    return await records_where(
        p,
        delivery_topic(Channel.PUSH, Lane.HIGH),
        lambda r: r.key == uid.encode(),
        n=1,
        timeout_s=timeout_s,
    )


async def test_online_gets_in_app_through_the_gateway_offline_gets_a_push(
    pipeline: Pipeline, gateway: GatewayProcess, sandbox: Sandbox, uid: str
) -> None:
    token = fcm_token()
    await set_contacts(pipeline, uid, devices=[{"token": token, "platform": "fcm"}])

    async with sse(gateway.base_url, uid) as client:
        row = await presence_of(pipeline, uid, lambda r: r and "gw-main" in r)
        assert list(row) == ["gw-main"]
        assert gateway.health()["connections"] == 1
        await send_message(pipeline, uid, "are you there?")
        await wait_until(lambda: len(client.events) == 1)
        assert client.events[0]["category"] == "message"
        # Online: in-app only. The push would have been planned with the in-app delivery.
        assert await push_deliveries(pipeline, uid, timeout_s=3) == []
        assert sandbox.sends("fcm", token) == []
        first_id = client.ids[0]

    # Disconnected: the gateway says so, and the same kind of notification wakes the phone.
    await presence_of(pipeline, uid, lambda r: not r)
    await send_message(pipeline, uid, "ping")
    [push] = await wait_for_sends(sandbox, "fcm", token)
    assert push.payload["notification"]["body"]
    assert len(await push_deliveries(pipeline, uid, timeout_s=10)) == 1

    # The app opens: it pulls what it missed from the inbox, through the gateway.
    async with sse(gateway.base_url, uid, last_event_id=first_id) as again:
        await wait_until(lambda: len(again.events) == 1)
        assert again.events[0]["category"] == "message"
        assert again.ids[0] != first_id


async def test_a_dead_gateways_users_go_offline_when_its_lease_runs_out(
    pipeline: Pipeline, sandbox: Sandbox, uid: str, tmp_path: Path
) -> None:
    token = fcm_token()
    await set_contacts(pipeline, uid, devices=[{"token": token, "platform": "fcm"}])
    doomed = start_gateway(pipeline, tmp_path, "gw-doomed")
    with doomed:
        async with sse(doomed.base_url, uid):
            await presence_of(pipeline, uid, lambda r: r and "gw-doomed" in r)
            doomed.kill()  # kill -9: no OFFLINE, no revoke
    # The table still lists the connection; only the lease tells it is gone.
    row = await presence_of(pipeline, uid, lambda r: r is not None, timeout_s=5)
    assert "gw-doomed" in row
    await asyncio.sleep(LEASE_S + 1)
    await send_message(pipeline, uid, "still there?")
    assert len(await wait_for_sends(sandbox, "fcm", token)) == 1


async def test_the_gateway_refuses_a_missing_or_forged_token(gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{gateway.base_url}/inapp/stream")).status_code == 401
        forged = issue_token("alice", "x" * 40, timedelta(minutes=5), datetime.now(UTC))
        r = await http.get(f"{gateway.base_url}/inapp/stream", params={"token": forged})
        assert r.status_code == 401


async def test_a_stopped_gateway_closes_its_streams_and_takes_its_users_offline(
    pipeline: Pipeline, uid: str, tmp_path: Path
) -> None:
    gw = start_gateway(pipeline, tmp_path, "gw-clean")
    with gw:
        async with sse(gw.base_url, uid):
            await presence_of(pipeline, uid, lambda r: r and "gw-clean" in r)
            await asyncio.to_thread(gw.stop)
    assert gw.proc is not None and gw.proc.returncode == 0
    assert "gateway gw-clean stopped" in gw.log_tail()
    await presence_of(pipeline, uid, lambda r: not r, timeout_s=15)
