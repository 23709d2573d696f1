"""How many sends each sender has in flight, counted by the sandbox (``Sandbox.load()``).

Each sender lets at most a configured number of sends be in flight (the rest wait for a
slot in front of the HTTP client, off their send timeout's clock), webhooks keep their
per-target order through the sink's chain, and APNs spreads its requests over several
HTTP/2 connections.
"""

import asyncio
from collections.abc import Callable

import pytest

from devenv.sandbox import Sandbox
from logic.ackwindow import KeyedChain
from schemas.notifications import Delivery
from sinks.providers import Outcome, Sender
from sinks.providers import apns as apns_provider
from sinks.providers import fcm as fcm_provider
from sinks.providers import twilio as twilio_provider
from sinks.providers import webhook as webhook_provider
from tests.sandbox.conftest import settings_from
from tests.sandbox.deliveries import delivery

LATENCY_MS = 300
# Shorter than the 5 sends one slot serves one after the other (5 x 0.3 s), longer than one.
TIMEOUT_S = 1.0
SLOTS = 2
SENDS = 10


def addresses(sb: Sandbox) -> dict[str, Callable[[int], Delivery]]:
    """Delivery number i for each provider, each to its own target."""
    return {
        "fcm": lambda i: delivery("push", f"fcm-token-{i}", "fcm", delivery_id=f"dlv-{i}"),
        "apns": lambda i: delivery("push", f"{i:064x}", "apns", delivery_id=f"dlv-{i}"),
        "twilio": lambda i: delivery("sms", f"+1555000{i:04d}", delivery_id=f"dlv-{i}"),
        "webhook": lambda i: delivery(
            "webhook", sb.webhook_url(f"hook{i}"), delivery_id=f"dlv-{i}"
        ),
    }


def build(provider: str, env: dict[str, str], **overrides: object) -> Sender:
    spec = {
        "fcm": fcm_provider.SPEC,
        "apns": apns_provider.SPEC,
        "twilio": twilio_provider.SPEC,
        "webhook": webhook_provider.SPEC,
    }[provider]
    return spec.build(settings_from(env, **overrides))


# The setting that bounds each provider's sends in flight to SLOTS.
BOUNDS: dict[str, dict[str, object]] = {
    "fcm": {"fcm_max_connections": SLOTS},
    "apns": {"apns_connections": 1, "apns_streams_per_connection": SLOTS},
    "twilio": {"twilio_max_connections": SLOTS},
    "webhook": {"webhook_max_connections": SLOTS},
}


@pytest.mark.parametrize("provider", sorted(BOUNDS))
async def test_sends_in_flight_are_bounded_and_the_wait_is_off_the_timeout(
    sb: Sandbox, shared_env: dict[str, str], provider: str
) -> None:
    # 10 sends at once, 2 slots, 0.3 s each: the last starts ~1.2 s after the first, past
    # the 1 s timeout. Counted from the call, those would time out before they were sent.
    sender = build(provider, shared_env, send_timeout_s=TIMEOUT_S, **BOUNDS[provider])
    make = addresses(sb)[provider]
    try:
        await sender.send(make(99))  # connect (TLS, token) before the clock matters
        sb.clear_sends()
        sb.reset_load()
        sb.inject(provider, latency_ms=LATENCY_MS)
        results = await asyncio.gather(*(sender.send(make(i)) for i in range(SENDS)))
    finally:
        await sender.aclose()
    assert [r.reason for r in results if r.outcome is not Outcome.SENT] == []
    assert sorted(r.delivery_id or "" for r in sb.sends(provider)) == sorted(
        f"dlv-{i}" for i in range(SENDS)
    )
    load = sb.load()[provider]
    assert load["peak_in_flight"] == SLOTS
    assert load["requests"] == SENDS


async def test_apns_spreads_requests_over_several_connections(
    sb: Sandbox, shared_env: dict[str, str]
) -> None:
    sender = build("apns", shared_env, apns_connections=3, apns_streams_per_connection=100)
    make = addresses(sb)["apns"]
    sb.inject("apns", latency_ms=LATENCY_MS)
    try:
        results = await asyncio.gather(*(sender.send(make(i)) for i in range(12)))
    finally:
        await sender.aclose()
    assert all(r.sent for r in results)
    load = sb.load()["apns"]
    # aioapns alone would put all 12 on its first connection (100 streams free).
    assert load["connections"] == 3
    assert load["peak_in_flight"] == 12


@pytest.mark.parametrize("transport", ["aiohttp", "httpcore"])
async def test_webhook_connections_are_reused_not_reopened(
    sb: Sandbox, shared_env: dict[str, str], transport: str
) -> None:
    # With httpx's default keep-alive (20 of 100) nearly every send opened a connection.
    sender = build(
        "webhook",
        shared_env,
        webhook_max_connections=30,
        webhook_pool_size=4,
        webhook_transport=transport,
    )
    make = addresses(sb)["webhook"]
    sb.inject("webhook", latency_ms=20)
    try:
        for _ in range(3):
            results = await asyncio.gather(*(sender.send(make(i)) for i in range(60)))
            assert all(r.sent for r in results)
        if transport == "httpcore":
            # Every response closed gave its connection's place back.
            room = sender._client._transport.room()  # type: ignore[attr-defined]
            assert room == [4] * 6 + [3] * 2
        else:
            connector = sender._client._transport.client.connector  # type: ignore[attr-defined]
            assert connector.limit == 30
    finally:
        await sender.aclose()
    load = sb.load()["webhook"]
    assert load["requests"] == 180
    assert load["connections"] <= 30


async def test_webhook_order_per_target_holds_through_the_sink_chain(
    sb: Sandbox, shared_env: dict[str, str]
) -> None:
    # The sink runs a target's webhooks one after another (sinks/deliver.ORDERED, a
    # KeyedChain); the slots in front of the client must not reorder them, even when most
    # sends wait for one.
    sender = build("webhook", shared_env, webhook_max_connections=SLOTS)
    chains = KeyedChain()
    sb.inject("webhook", latency_ms=30)
    order = [(f"t{i % 4}", i) for i in range(24)]

    async def deliver(target: str, i: int) -> None:
        d = delivery("webhook", sb.webhook_url(target), delivery_id=f"dlv-{i}")
        result = await sender.send(d)
        assert result.sent

    try:
        await asyncio.gather(
            *(chains.run(t, lambda t=t, i=i: deliver(t, i)) for t, i in order)  # type: ignore[misc]
        )
    finally:
        await sender.aclose()
    for target in ("t0", "t1", "t2", "t3"):
        got = [r.delivery_id for r in sb.sends("webhook", target=target)]
        assert got == [f"dlv-{i}" for t, i in order if t == target]
    assert sb.load()["webhook"]["peak_in_flight"] == SLOTS
