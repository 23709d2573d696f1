"""TwilioSender (the SDK's async client) against the sandbox."""

import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest

from devenv.sandbox import Sandbox
from schemas.notifications import Delivery
from sinks.providers import Outcome, ProviderSettings
from sinks.providers.twilio import TwilioSender
from tests.sandbox.deliveries import HANG_TIMEOUT_S, delivery

NUMBER = "+15551230001"


def make(cfg: ProviderSettings, **kw: object) -> TwilioSender:
    assert cfg.twilio_account_sid is not None and cfg.twilio_auth_token is not None
    options: dict[str, object] = {
        "account_sid": cfg.twilio_account_sid,
        "auth_token": cfg.twilio_auth_token.get_secret_value(),
        "sms_from": cfg.sms_from,
        "messaging_service_sid": cfg.twilio_messaging_service_sid,
        "status_callback_url": cfg.twilio_status_callback_url,
        "base_url": cfg.twilio_url,
        "timeout_s": cfg.send_timeout_s,
        **kw,
    }
    return TwilioSender(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def twilio(cfg: ProviderSettings) -> AsyncIterator[TwilioSender]:
    sender = make(cfg)
    yield sender
    await sender.aclose()


def sms(address: str = NUMBER, **kw: object) -> Delivery:
    return delivery("sms", address, **kw)


async def test_send_records_text_sender_and_status_callback(
    sb: Sandbox, twilio: TwilioSender, cfg: ProviderSettings
) -> None:
    result = await twilio.send(sms())
    assert result.outcome is Outcome.SENT
    [rec] = sb.sends("twilio")
    assert result.provider_message_id == f"SM{rec.message_id}"
    assert rec.delivery_id == "dlv-1"
    assert rec.payload["To"] == NUMBER
    assert rec.payload["From"] == cfg.sms_from
    assert (
        rec.payload["Body"]
        == "Ada commented: Nice <b>photo</b> & view https://clarion.example/p/42"
    )
    callback = urlsplit(rec.payload["StatusCallback"])
    assert parse_qs(callback.query) == {"delivery_id": ["dlv-1"]}
    assert rec.headers["Authorization"].startswith("Basic ")


async def test_messaging_service_instead_of_a_number(sb: Sandbox, cfg: ProviderSettings) -> None:
    sender = make(
        cfg, sms_from=None, messaging_service_sid="MG" + "1" * 32, status_callback_url=None
    )
    try:
        assert (await sender.send(sms(url=None))).outcome is Outcome.SENT
    finally:
        await sender.aclose()
    [rec] = sb.sends("twilio")
    assert rec.payload["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in rec.payload and "StatusCallback" not in rec.payload
    assert rec.payload["Body"] == "Ada commented: Nice <b>photo</b> & view"


async def test_stop_reply_is_permanent_opt_out(sb: Sandbox, twilio: TwilioSender) -> None:
    sb.inject("twilio", target=NUMBER, error=21610)
    result = await twilio.send(sms())
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "twilio:21610")
    assert result.opt_out and not result.remove_target
    assert sb.sends() == []


async def test_invalid_number_is_permanent_and_removes_the_target(
    sb: Sandbox, twilio: TwilioSender
) -> None:
    result = await twilio.send(sms("not-a-number"))
    assert (result.outcome, result.reason, result.remove_target) == (
        Outcome.PERMANENT,
        "twilio:21211",
        True,
    )
    assert not result.opt_out


@pytest.mark.parametrize("code", [21614, 30005, 30006])
async def test_unreachable_kinds_of_number_remove_the_target(
    sb: Sandbox, twilio: TwilioSender, code: int
) -> None:
    sb.inject("twilio", error=code, times=1)
    result = await twilio.send(sms())
    assert (result.outcome, result.remove_target) == (Outcome.PERMANENT, True)


async def test_rate_limit_is_transient_with_retry_after(sb: Sandbox, twilio: TwilioSender) -> None:
    sb.inject("twilio", error=20429, retry_after_s=7, times=1)
    result = await twilio.send(sms())
    assert (result.outcome, result.reason, result.retry_after_s) == (
        Outcome.TRANSIENT,
        "twilio:20429",
        7,
    )
    # The Retry-After of one send never leaks into the next one's result.
    sb.inject("twilio", error=30003, times=1)
    unreachable = await twilio.send(sms())
    assert (unreachable.outcome, unreachable.retry_after_s) == (Outcome.TRANSIENT, None)


async def test_server_error_is_transient(sb: Sandbox, twilio: TwilioSender) -> None:
    sb.inject("twilio", status=503, times=1)
    result = await twilio.send(sms())
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "twilio:20500")


async def test_body_over_1600_chars_is_permanent_payload_too_large(
    sb: Sandbox, twilio: TwilioSender
) -> None:
    result = await twilio.send(sms(body="x" * 1600))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "payload_too_large")
    assert sb.sends() == []


async def test_bad_credentials_are_transient(sb: Sandbox, twilio: TwilioSender) -> None:
    sb.inject("twilio", error=20003, times=1)
    result = await twilio.send(sms())
    assert result.outcome is Outcome.TRANSIENT
    assert result.reason == "twilio:20003 (credential)"


async def test_hanging_twilio_is_a_transient_timeout(sb: Sandbox, cfg: ProviderSettings) -> None:
    sender = make(cfg, timeout_s=HANG_TIMEOUT_S)
    sb.inject("twilio", timeout=True, hang_s=2, times=1)
    start = time.monotonic()
    try:
        result = await sender.send(sms())
    finally:
        await sender.aclose()
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "timeout")
    assert time.monotonic() - start < HANG_TIMEOUT_S + 1
