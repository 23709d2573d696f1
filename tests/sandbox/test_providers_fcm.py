"""FcmSender (firebase-admin's async path) against the sb."""

import time
from collections.abc import AsyncIterator

import pytest

from devenv.sandbox import Sandbox
from schemas.common import Lane
from sinks.providers import Outcome, ProviderSettings
from sinks.providers.fcm import FcmSender
from tests.sandbox.deliveries import HANG_TIMEOUT_S, delivery

TOKEN = "fcm-token-1"


def make(cfg: ProviderSettings, **kw: object) -> FcmSender:
    assert cfg.fcm_credentials_file is not None
    options = {"base_url": cfg.fcm_url, "timeout_s": cfg.send_timeout_s, **kw}
    return FcmSender(cfg.fcm_credentials_file, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def fcm(cfg: ProviderSettings) -> AsyncIterator[FcmSender]:
    sender = make(cfg)
    yield sender
    await sender.aclose()


def push(address: str = TOKEN, **kw: object):  # type: ignore[no-untyped-def]
    return delivery("push", address, "fcm", **kw)


async def test_send_records_notification_data_and_delivery_id(sb: Sandbox, fcm: FcmSender) -> None:
    result = await fcm.send(push())
    assert result.outcome is Outcome.SENT
    [rec] = sb.sends("fcm")
    assert result.provider_message_id == f"projects/clarion-sandbox/messages/{rec.message_id}"
    assert rec.target == TOKEN
    assert rec.delivery_id == "dlv-1"
    msg = rec.payload
    assert msg["token"] == TOKEN
    assert msg["notification"] == {
        "title": "Ada commented",
        "body": "Nice <b>photo</b> & view",
        "image": "https://cdn.example/p/42.jpg",
    }
    assert msg["data"] == {
        "post_id": "42",
        "clarion_delivery_id": "dlv-1",
        "clarion_notification_id": "ntf-1",
        "url": "https://clarion.example/p/42",
    }
    assert msg["android"]["priority"] == "high"
    assert 3590 <= int(msg["android"]["ttl"].removesuffix("s")) <= 3600


async def test_bulk_lane_is_normal_priority_and_no_expiry_means_no_ttl(
    sb: Sandbox, fcm: FcmSender
) -> None:
    sent = await fcm.send(push(lane=Lane.BULK, expires_at=None, image_url=None, url=None))
    assert sent.outcome is Outcome.SENT
    [rec] = sb.sends("fcm")
    assert rec.payload["android"] == {"priority": "normal"}
    assert "image" not in rec.payload["notification"]
    assert "url" not in rec.payload["data"]


async def test_fid_addresses_are_sent_as_fid(sb: Sandbox, cfg: ProviderSettings) -> None:
    sender = make(cfg, address_kind="fid")
    try:
        assert (await sender.send(push())).outcome is Outcome.SENT
    finally:
        await sender.aclose()
    [rec] = sb.sends("fcm")
    assert rec.payload["fid"] == TOKEN and "token" not in rec.payload


@pytest.mark.parametrize("code", ["UNREGISTERED", "SENDER_ID_MISMATCH"])
async def test_dead_token_is_permanent_and_removes_the_target(
    sb: Sandbox, fcm: FcmSender, code: str
) -> None:
    sb.inject("fcm", target="stale", error=code)
    result = await fcm.send(push("stale"))
    assert (result.outcome, result.reason, result.remove_target) == (
        Outcome.PERMANENT,
        f"fcm:{code}",
        True,
    )
    assert sb.sends() == []


async def test_quota_exceeded_is_transient_with_retry_after_and_not_retried_by_the_sdk(
    sb: Sandbox, fcm: FcmSender
) -> None:
    sb.inject("fcm", error="QUOTA_EXCEEDED", retry_after_s=30, times=1)
    start = time.monotonic()
    result = await fcm.send(push())
    assert time.monotonic() - start < 2  # the SDK did not sleep out the Retry-After
    assert (result.outcome, result.reason, result.retry_after_s) == (
        Outcome.TRANSIENT,
        "fcm:QUOTA_EXCEEDED",
        30,
    )
    assert (await fcm.send(push())).outcome is Outcome.SENT


@pytest.mark.parametrize("code", ["UNAVAILABLE", "INTERNAL"])
async def test_server_errors_are_transient_after_a_single_attempt(
    sb: Sandbox, fcm: FcmSender, code: str
) -> None:
    sb.inject("fcm", error=code, times=2)
    first = await fcm.send(push())
    assert (first.outcome, first.reason) == (Outcome.TRANSIENT, f"fcm:{code}")
    # One attempt per send: the second injected failure is still there for the next send.
    assert (await fcm.send(push())).outcome is Outcome.TRANSIENT
    assert (await fcm.send(push())).outcome is Outcome.SENT


async def test_third_party_auth_error_is_a_transient_credential_problem(
    sb: Sandbox, fcm: FcmSender
) -> None:
    sb.inject("fcm", error="THIRD_PARTY_AUTH_ERROR", times=1)
    result = await fcm.send(push())
    assert result.outcome is Outcome.TRANSIENT
    assert result.reason is not None and "THIRD_PARTY_AUTH_ERROR" in result.reason
    assert "credential" in result.reason


async def test_refused_access_token_is_refreshed_before_the_next_send(
    sb: Sandbox, fcm: FcmSender
) -> None:
    assert (await fcm.send(push())).outcome is Outcome.SENT
    sb.inject("fcm", status=401, times=1)
    refused = await fcm.send(push())
    assert refused.outcome is Outcome.TRANSIENT and refused.reason is not None
    assert refused.reason.startswith("fcm:UNAUTHENTICATED")
    assert (await fcm.send(push())).outcome is Outcome.SENT
    first, second = (r.headers["Authorization"] for r in sb.sends("fcm"))
    assert first != second


async def test_oversized_message_is_permanent_payload_too_large(
    sb: Sandbox, fcm: FcmSender
) -> None:
    result = await fcm.send(push(data={"blob": "x" * 5000}))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "payload_too_large")
    assert sb.sends() == []


async def test_hanging_fcm_is_a_transient_timeout(sb: Sandbox, cfg: ProviderSettings) -> None:
    sender = make(cfg, timeout_s=HANG_TIMEOUT_S)
    sb.inject("fcm", timeout=True, hang_s=2, times=1)
    start = time.monotonic()
    try:
        result = await sender.send(push())
    finally:
        await sender.aclose()
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "timeout")
    assert time.monotonic() - start < HANG_TIMEOUT_S + 1
