"""The senders' in-flight bound (GuardedSender's slots) and the pooled httpx transport."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from schemas.common import Category, Channel, Lane
from schemas.notifications import Delivery, Target
from sinks.providers.base import GuardedSender, Outcome, SendResult, sent
from sinks.providers.clients import PooledTransport, split_evenly


def make(i: int = 0, **kw: object) -> Delivery:
    now = datetime.now(UTC)
    fields: dict[str, object] = {
        "delivery_id": f"d{i}",
        "notification_id": "n1",
        "recipient_id": "u1",
        "category": Category.PAYMENT,
        "lane": Lane.HIGH,
        "channel": Channel.WEBHOOK,
        "target": Target(address="https://example.com/hook"),
        "title": "Paid",
        "body": "You received $5",
        "occurred_at": now,
        "created_at": now,
        **kw,
    }
    return Delivery(**fields)  # type: ignore[arg-type]


class Slow(GuardedSender):
    provider = "test"

    def __init__(self, timeout_s: float, max_in_flight: int | None, takes_s: float) -> None:
        super().__init__(timeout_s, max_in_flight)
        self.takes_s = takes_s
        self.running = 0
        self.most = 0
        self.calls = 0

    async def _send(self, delivery: Delivery) -> SendResult:
        self.calls += 1
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.takes_s)
        finally:
            self.running -= 1
        return sent(delivery.delivery_id)


async def test_slots_bound_sends_in_flight_and_the_wait_is_not_timed() -> None:
    # 8 sends, 2 slots, 0.1 s each: the last starts after 0.3 s, past the 0.15 s timeout.
    sender = Slow(timeout_s=0.15, max_in_flight=2, takes_s=0.1)
    results = await asyncio.gather(*(sender.send(make(i)) for i in range(8)))
    assert [r.outcome for r in results] == [Outcome.SENT] * 8
    assert sender.most == 2


async def test_without_slots_every_send_runs_at_once() -> None:
    sender = Slow(timeout_s=1.0, max_in_flight=None, takes_s=0.05)
    await asyncio.gather(*(sender.send(make(i)) for i in range(8)))
    assert sender.most == 8


async def test_the_timeout_still_bounds_the_send_itself() -> None:
    sender = Slow(timeout_s=0.05, max_in_flight=1, takes_s=1.0)
    result = await sender.send(make())
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "timeout")
    assert sender.running == 0  # cancelled, and its slot given back
    sender.takes_s = 0.0
    assert (await sender.send(make())).sent


async def test_expired_deliveries_do_not_wait_for_a_slot_and_expiry_is_checked_again() -> None:
    sender = Slow(timeout_s=1.0, max_in_flight=1, takes_s=0.3)
    busy = asyncio.create_task(sender.send(make(0)))
    await asyncio.sleep(0)
    started = time.monotonic()
    gone = await sender.send(make(1, expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert (gone.outcome, gone.reason) == (Outcome.PERMANENT, "expired")
    assert time.monotonic() - started < 0.1  # not behind the busy slot
    # Expires while it waits for the slot: not sent when its turn comes.
    soon = make(2, expires_at=datetime.now(UTC) + timedelta(seconds=0.1))
    late = await sender.send(soon)
    assert (late.outcome, late.reason) == (Outcome.PERMANENT, "expired")
    assert (await busy).sent
    assert sender.calls == 1


def test_max_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Slow(timeout_s=1.0, max_in_flight=0, takes_s=0)


@pytest.mark.parametrize(
    ("total", "most", "parts"),
    [(100, 4, [4] * 25), (100, 16, [15, 15, 14, 14, 14, 14, 14]), (3, 8, [3]), (5, 1, [1] * 5)],
)
def test_split_evenly(total: int, most: int, parts: list[int]) -> None:
    assert split_evenly(total, most) == parts
    assert sum(parts) == total


def test_split_evenly_refuses_nothing() -> None:
    with pytest.raises(ValueError):
        split_evenly(0, 4)


class Body(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"ok"


def pooled(connections: int, pool_size: int) -> tuple[PooledTransport, list[list[str]]]:
    """A PooledTransport whose pools are mock transports recording the paths they got."""
    transport = PooledTransport(connections, pool_size)
    seen: list[list[str]] = []
    mocks = []
    for _ in range(transport.pools):
        paths: list[str] = []
        seen.append(paths)

        def handler(request: httpx.Request, paths: list[str] = paths) -> httpx.Response:
            if request.url.path == "/boom":
                raise httpx.ConnectError("refused", request=request)
            paths.append(request.url.path)
            # A body still to be read, as from the network (content= would be read at once).
            return httpx.Response(200, stream=Body())

        mocks.append(httpx.MockTransport(handler))
    transport._pools = mocks  # type: ignore[assignment]
    return transport, seen


async def test_pooled_transport_spreads_requests_and_frees_places_on_close() -> None:
    transport, seen = pooled(connections=6, pool_size=2)
    assert transport.room() == [2, 2, 2]
    # Three requests whose responses are still open take one place in each pool.
    open_ = [
        await transport.handle_async_request(httpx.Request("POST", f"http://x/{i}"))
        for i in range(3)
    ]
    assert transport.room() == [1, 1, 1]
    assert [len(paths) for paths in seen] == [1, 1, 1]
    for response in open_:
        await response.aread()
        await response.aclose()
        await response.aclose()  # closing twice gives the place back once
    assert transport.room() == [2, 2, 2]
    # Through a client, which reads and closes every response.
    async with httpx.AsyncClient(transport=transport) as client:
        responses = await asyncio.gather(*(client.post(f"http://x/c{i}") for i in range(6)))
    assert [r.text for r in responses] == ["ok"] * 6
    assert transport.room() == [2, 2, 2]


async def test_pooled_transport_frees_the_place_of_a_failed_request() -> None:
    transport, _ = pooled(connections=2, pool_size=1)
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(httpx.Request("POST", "http://x/boom"))
    assert transport.room() == [1, 1]
