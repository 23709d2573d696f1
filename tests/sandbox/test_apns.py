"""The real ``aioapns`` client against the sandbox over TLS + HTTP/2.

aioapns has no host option; ``clients.apns_client`` overrides only the host and
port on its protocol class and trusts the sandbox CA through ``ssl_context``.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioapns import NotificationRequest, PushType

from devenv.sandbox import Sandbox
from devenv.sandbox.clients import apns_client

TOKEN = "a" * 64
OTHER = "b" * 64


@pytest.fixture
async def apns(sandbox: Sandbox) -> AsyncIterator[Any]:
    client = apns_client(sandbox.apns_url, sandbox.apns_ca_file)
    yield client
    client.pool.close()


def alert(token: str = TOKEN, **kw: Any) -> NotificationRequest:
    return NotificationRequest(
        device_token=token,
        message={"aps": {"alert": {"title": "Shipped", "body": "On its way"}}},
        push_type=PushType.ALERT,
        **kw,
    )


async def test_push_is_accepted_and_recorded_with_its_headers(sandbox: Sandbox, apns: Any) -> None:
    request = alert(priority=10, collapse_key="order-42", time_to_live=60)
    result = await apns.send_notification(request)
    assert result.is_successful, result.description
    assert result.notification_id == request.notification_id
    [rec] = sandbox.sends("apns")
    assert rec.target == TOKEN
    assert rec.payload["aps"]["alert"]["title"] == "Shipped"
    assert rec.idempotency_key == request.notification_id
    assert rec.headers["apns-push-type"] == "alert"
    assert rec.headers["apns-priority"] == "10"
    assert rec.headers["apns-collapse-id"] == "order-42"
    assert rec.headers["apns-topic"] == "com.example.clarion"
    assert int(rec.headers["apns-expiration"]) > 0
    assert rec.headers["authorization"].startswith("bearer ")


async def test_injected_unregistered_is_410_with_reason(sandbox: Sandbox, apns: Any) -> None:
    sandbox.inject("apns", target=OTHER, error="Unregistered")
    gone, ok = await asyncio.gather(
        apns.send_notification(alert(OTHER)), apns.send_notification(alert(TOKEN))
    )
    assert (gone.status, gone.description) == ("410", "Unregistered")
    assert gone.timestamp is not None
    assert ok.is_successful
    assert [r.target for r in sandbox.sends("apns")] == [TOKEN]


async def test_malformed_token_and_oversized_payload_are_refused(
    sandbox: Sandbox, apns: Any
) -> None:
    bad = await apns.send_notification(alert("not-a-token"))
    assert (bad.status, bad.description) == ("400", "BadDeviceToken")
    big = NotificationRequest(device_token=TOKEN, message={"aps": {}, "blob": "x" * 5000})
    too_large = await apns.send_notification(big)
    assert (too_large.status, too_large.description) == ("413", "PayloadTooLarge")
    assert sandbox.sends() == []


async def test_rate_limit_then_recovery(sandbox: Sandbox, apns: Any) -> None:
    sandbox.inject("apns", status=429, times=1)
    first = await apns.send_notification(alert())
    assert (first.status, first.description) == ("429", "TooManyRequests")
    assert (await apns.send_notification(alert())).is_successful


async def test_hanging_apns_makes_the_caller_time_out(sandbox: Sandbox, apns: Any) -> None:
    # aioapns has no request timeout of its own: callers must bound the wait.
    sandbox.inject("apns", timeout=True, times=1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(apns.send_notification(alert()), timeout=0.5)
