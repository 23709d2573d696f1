"""The light views of the send log: counts and payload-free listings (benchmarks poll them)."""

import time

import httpx

from devenv.sandbox import Sandbox
from sinks.providers.webhook import DELIVERY_ID_HEADER, sign


def post_webhook(sb: Sandbox, name: str, delivery_id: str) -> httpx.Response:
    body = b'{"hello":"world"}'
    assert sb.webhook_secret is not None
    headers = {
        "Content-Type": "application/json",
        DELIVERY_ID_HEADER: delivery_id,
        "Clarion-Signature": sign(sb.webhook_secret, int(time.time()), body),
    }
    return httpx.post(sb.webhook_url(name), content=body, headers=headers)


def test_count_and_brief_view(sandbox: Sandbox) -> None:
    control = f"{sandbox.base_url}/_sandbox/sends"
    assert httpx.get(f"{control}/count").json() == {"count": 0}
    assert post_webhook(sandbox, "shop", "d1").status_code == 200
    assert post_webhook(sandbox, "shop", "d2").status_code == 200
    assert post_webhook(sandbox, "other", "d3").status_code == 200
    assert httpx.get(f"{control}/count", params={"provider": "webhook"}).json() == {"count": 3}
    assert httpx.get(f"{control}/count", params={"target": "shop"}).json() == {"count": 2}
    assert httpx.get(f"{control}/count", params={"provider": "fcm"}).json() == {"count": 0}

    sends = httpx.get(control, params={"provider": "webhook", "view": "brief"}).json()["sends"]
    assert [s["delivery_id"] for s in sends] == ["d1", "d2", "d3"]
    assert set(sends[0]) == {"provider", "target", "message_id", "received_at", "delivery_id"}
    assert sends[0]["received_at"] <= sends[2]["received_at"]
    assert httpx.get(control, params={"view": "nope"}).status_code == 400


def test_sends_per_second(sandbox: Sandbox) -> None:
    control = f"{sandbox.base_url}/_sandbox/sends/per-second"
    assert httpx.get(control).json() == {"per_second": {}}
    for i in range(3):
        assert post_webhook(sandbox, "shop", f"d{i}").status_code == 200
    counts = sandbox.sends_per_second("webhook")
    assert sum(counts.values()) == 3
    assert list(counts) == sorted(counts)
    assert {int(s.received_at) for s in sandbox.sends()} == set(counts)
    answered = httpx.get(control, params={"provider": "webhook"}).json()["per_second"]
    assert {int(k): v for k, v in answered.items()} == counts
    assert httpx.get(control, params={"provider": "fcm"}).json() == {"per_second": {}}


def test_load_view_counts_sends_per_provider_and_connection(sandbox: Sandbox) -> None:
    load = f"{sandbox.base_url}/_sandbox/load"
    assert httpx.get(load).json() == {}
    # Two sends on one kept-alive connection, one on another; control requests not counted.
    with httpx.Client() as client:
        body = b"{}"
        assert sandbox.webhook_secret is not None
        for name in ("a", "b"):
            ts = int(time.time())
            headers = {"Clarion-Signature": sign(sandbox.webhook_secret, ts, body)}
            client.post(sandbox.webhook_url(name), content=body, headers=headers)
    assert post_webhook(sandbox, "c", "d3").status_code == 200
    httpx.get(f"{sandbox.base_url}/_sandbox/sends/count")
    assert httpx.get(load).json() == {
        "webhook": {"in_flight": 0, "peak_in_flight": 1, "requests": 3, "connections": 2}
    }
    assert sandbox.load() == httpx.get(load).json()
    assert httpx.delete(load).status_code == 204
    assert sandbox.load() == {
        "webhook": {"in_flight": 0, "peak_in_flight": 0, "requests": 0, "connections": 0}
    }
