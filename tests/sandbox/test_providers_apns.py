"""ApnsSender (aioapns over TLS + HTTP/2) against the sandbox."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from devenv.sandbox import Sandbox
from schemas.common import Lane
from schemas.notifications import Delivery
from sinks.providers import Outcome, ProviderSettings, SendResult
from sinks.providers.apns import ApnsSender, apns_id
from tests.sandbox.deliveries import HANG_TIMEOUT_S, delivery

TOKEN = "a" * 64


def make(cfg: ProviderSettings, **kw: object) -> ApnsSender:
    assert cfg.apns_key_file and cfg.apns_key_id and cfg.apns_team_id and cfg.apns_topic
    options: dict[str, object] = {
        "key_file": cfg.apns_key_file,
        "key_id": cfg.apns_key_id,
        "team_id": cfg.apns_team_id,
        "topic": cfg.apns_topic,
        "use_sandbox": cfg.apns_use_sandbox,
        "apns_url": cfg.apns_url,
        "ca_file": cfg.apns_ca_file,
        "timeout_s": cfg.send_timeout_s,
        **kw,
    }
    return ApnsSender(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def apns(cfg: ProviderSettings) -> AsyncIterator[ApnsSender]:
    sender = make(cfg)
    yield sender
    await sender.aclose()


def push(address: str = TOKEN, **kw: object) -> Delivery:
    return delivery("push", address, "apns", **kw)


async def test_send_records_payload_headers_and_delivery_id(sb: Sandbox, apns: ApnsSender) -> None:
    result = await apns.send(push())
    assert result.outcome is Outcome.SENT
    [rec] = sb.sends("apns")
    assert rec.target == TOKEN
    assert rec.delivery_id == "dlv-1"
    assert rec.payload == {
        "aps": {
            "alert": {"title": "Ada commented", "body": "Nice <b>photo</b> & view"},
            "sound": "default",
            "mutable-content": 1,
        },
        "image_url": "https://cdn.example/p/42.jpg",
        "url": "https://clarion.example/p/42",
        "clarion_delivery_id": "dlv-1",
    }
    assert rec.headers["apns-id"] == apns_id("dlv-1") == result.provider_message_id
    assert rec.headers["apns-priority"] == "10"
    assert rec.headers["apns-push-type"] == "alert"
    assert rec.headers["apns-collapse-id"] == "ntf-1"
    assert rec.headers["apns-topic"] == "com.example.clarion"
    assert 3590 <= int(rec.headers["apns-expiration"]) - time.time() <= 3601


async def test_bulk_without_expiry_or_image(sb: Sandbox, apns: ApnsSender) -> None:
    long_id = "n" * 100
    result = await apns.send(
        push(lane=Lane.BULK, expires_at=None, image_url=None, notification_id=long_id)
    )
    assert result.outcome is Outcome.SENT
    [rec] = sb.sends("apns")
    assert rec.headers["apns-priority"] == "5"
    assert "apns-expiration" not in rec.headers  # APNs stores it for an offline device
    assert rec.headers["apns-collapse-id"] == "n" * 64
    assert "mutable-content" not in rec.payload["aps"] and "image_url" not in rec.payload


async def test_same_delivery_keeps_its_apns_id_and_others_differ(
    sb: Sandbox, apns: ApnsSender
) -> None:
    for delivery_id in ("dlv-1", "dlv-1", "dlv-2"):
        assert (await apns.send(push(delivery_id=delivery_id))).outcome is Outcome.SENT
    ids = [r.idempotency_key for r in sb.sends("apns")]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize("reason", ["Unregistered", "DeviceTokenNotForTopic"])
async def test_dead_token_is_permanent_and_removes_the_target(
    sb: Sandbox, apns: ApnsSender, reason: str
) -> None:
    sb.inject("apns", target=TOKEN, error=reason)
    result = await apns.send(push())
    assert (result.outcome, result.reason, result.remove_target) == (
        Outcome.PERMANENT,
        f"apns:{reason}",
        True,
    )
    assert sb.sends() == []


async def test_malformed_token_is_bad_device_token(sb: Sandbox, apns: ApnsSender) -> None:
    result = await apns.send(push("not-a-token"))
    assert (result.outcome, result.reason, result.remove_target) == (
        Outcome.PERMANENT,
        "apns:BadDeviceToken",
        True,
    )


async def test_oversized_payload_is_permanent_payload_too_large(
    sb: Sandbox, apns: ApnsSender
) -> None:
    result = await apns.send(push(body="x" * 5000))
    assert (result.outcome, result.reason, result.remove_target) == (
        Outcome.PERMANENT,
        "payload_too_large",
        False,
    )


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, "TooManyRequests"), (500, "InternalServerError"), (503, "ServiceUnavailable")],
)
async def test_throttling_and_server_errors_are_transient(
    sb: Sandbox, apns: ApnsSender, status: int, reason: str
) -> None:
    sb.inject("apns", status=status, times=1)
    result = await apns.send(push())
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, f"apns:{reason}")
    assert (await apns.send(push())).outcome is Outcome.SENT


async def test_refused_provider_token_is_a_transient_credential_alert(
    sb: Sandbox, apns: ApnsSender
) -> None:
    sb.inject("apns", error="InvalidProviderToken", times=1)
    result = await apns.send(push())
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "apns:InvalidProviderToken")
    assert result.detail is not None and "credential" in result.detail
    assert not result.remove_target


async def test_hanging_apns_is_a_transient_timeout(sb: Sandbox, cfg: ProviderSettings) -> None:
    sender = make(cfg, timeout_s=HANG_TIMEOUT_S)
    sb.inject("apns", timeout=True, hang_s=2, times=1)
    start = time.monotonic()
    try:
        result = await sender.send(push())
    finally:
        await sender.aclose()
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "timeout")
    assert time.monotonic() - start < HANG_TIMEOUT_S + 1


async def test_unreachable_apns_is_transient(sb: Sandbox, cfg: ProviderSettings) -> None:
    from devenv.worker import free_port

    sender = make(cfg, apns_url=f"https://127.0.0.1:{free_port()}", timeout_s=HANG_TIMEOUT_S)
    try:
        result = await sender.send(push())
    finally:
        await sender.aclose()
    assert result.outcome is Outcome.TRANSIENT
    assert result.reason in ("apns:connection", "timeout")


async def test_late_answer_to_a_timed_out_push_leaves_other_pushes_alone(
    sb: Sandbox, cfg: ProviderSettings
) -> None:
    # aioapns alone chokes on the late answer (its future was cancelled), drops the
    # connection and resends every push in flight on it; "other" would then be sent twice
    # and, slow again the second time, miss its deadline.
    sender = make(cfg, timeout_s=1.0)
    late, other = "c" * 64, "d" * 64
    try:
        assert (await sender.send(push())).outcome is Outcome.SENT  # connection is up
        sb.clear_sends()
        sb.inject("apns", target=late, latency_ms=1200, times=1)
        sb.inject("apns", target=other, latency_ms=800, times=2)

        async def other_push() -> SendResult:
            await asyncio.sleep(0.6)  # in flight when the late answer arrives (t=1.2)
            return await sender.send(push(other, delivery_id="other"))

        timed_out, ok = await asyncio.gather(
            sender.send(push(late, delivery_id="late")), other_push()
        )
    finally:
        await sender.aclose()
    assert (timed_out.outcome, timed_out.reason) == (Outcome.TRANSIENT, "timeout")
    assert ok.outcome is Outcome.SENT, ok
    assert sorted(r.delivery_id or "" for r in sb.sends("apns")) == ["late", "other"]
