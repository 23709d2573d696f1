"""The providers' pure parts: classification tables, payload shaping, the send guard."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from firebase_admin import exceptions as fb
from firebase_admin import messaging

from schemas.common import Category, Channel, Lane
from schemas.notifications import Delivery, Target
from sinks.providers.apns import apns_id, classify_apns, collapse_id
from sinks.providers.base import (
    GuardedSender,
    Outcome,
    SendResult,
    parse_retry_after,
    sent,
    ttl_seconds,
)
from sinks.providers.fcm import classify_fcm_error
from sinks.providers.sendgrid import classify_sendgrid
from sinks.providers.twilio import classify_twilio, sms_text, status_callback
from sinks.providers.webhook import classify_webhook

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def make(address: str = "+15551230001", **kw: object) -> Delivery:
    fields: dict[str, object] = {
        "delivery_id": "d1",
        "notification_id": "n1",
        "recipient_id": "u1",
        "category": Category.PAYMENT,
        "lane": Lane.CRITICAL,
        "channel": Channel.SMS,
        "target": Target(address=address),
        "title": "Paid",
        "body": "You received $5",
        "occurred_at": NOW,
        "created_at": NOW,
        **kw,
    }
    return Delivery(**fields)  # type: ignore[arg-type]


def outcome(result: SendResult) -> tuple[Outcome, str | None, bool, bool]:
    return result.outcome, result.reason, result.remove_target, result.opt_out


P, T = Outcome.PERMANENT, Outcome.TRANSIENT


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (200, None, (Outcome.SENT, None, False, False)),
        (410, "Unregistered", (P, "apns:Unregistered", True, False)),
        (400, "BadDeviceToken", (P, "apns:BadDeviceToken", True, False)),
        (400, "DeviceTokenNotForTopic", (P, "apns:DeviceTokenNotForTopic", True, False)),
        (413, "PayloadTooLarge", (P, "payload_too_large", False, False)),
        (429, "TooManyRequests", (T, "apns:TooManyRequests", False, False)),
        (500, "InternalServerError", (T, "apns:InternalServerError", False, False)),
        (503, "ServiceUnavailable", (T, "apns:ServiceUnavailable", False, False)),
        (403, "InvalidProviderToken", (T, "apns:InvalidProviderToken", False, False)),
        (403, "ExpiredProviderToken", (T, "apns:ExpiredProviderToken", False, False)),
        (400, "BadCollapseId", (P, "apns:BadCollapseId", False, False)),
    ],
)
def test_apns_table(status: int, reason: str | None, expected: tuple[object, ...]) -> None:
    assert outcome(classify_apns(str(status), reason)) == expected


def test_apns_ids_and_collapse_ids() -> None:
    assert apns_id("d1") == apns_id("d1") != apns_id("d2")
    assert len(apns_id("d1")) == 36
    assert collapse_id("n" * 70) == "n" * 64
    # 63 ASCII bytes and then a 2-byte character: never cut a character in half.
    assert collapse_id("n" * 63 + "é") == "n" * 63
    assert len(collapse_id("é" * 40).encode()) == 64


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (21610, 400, (P, "twilio:21610", False, True)),
        (21211, 400, (P, "twilio:21211", True, False)),
        (21614, 400, (P, "twilio:21614", True, False)),
        (30005, 400, (P, "twilio:30005", True, False)),
        (30006, 400, (P, "twilio:30006", True, False)),
        (21617, 400, (P, "payload_too_large", False, False)),
        (20429, 429, (T, "twilio:20429", False, False)),
        (None, 429, (T, "http_429", False, False)),
        (30003, 400, (T, "twilio:30003", False, False)),
        (20500, 500, (T, "twilio:20500", False, False)),
        (20003, 401, (T, "twilio:20003 (credential)", False, False)),
        (21604, 400, (P, "twilio:21604", False, False)),
    ],
)
def test_twilio_table(code: int | None, status: int, expected: tuple[object, ...]) -> None:
    assert outcome(classify_twilio(code, status, "msg")) == expected


def test_twilio_text_and_callback() -> None:
    assert sms_text(make(url="https://x.example/p")) == "Paid: You received $5 https://x.example/p"
    assert sms_text(make(title="")) == "You received $5"
    assert status_callback(None, "d1") is None
    assert status_callback("https://h/cb", "d 1") == "https://h/cb?delivery_id=d+1"
    assert status_callback("https://h/cb?a=1", "d1") == "https://h/cb?a=1&delivery_id=d1"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (202, (Outcome.SENT, None, False, False)),
        (500, (T, "http_500", False, False)),
        (503, (T, "http_503", False, False)),
        (413, (P, "payload_too_large", False, False)),
        (400, (P, "http_400", False, False)),
        (401, (T, "http_401 (credential)", False, False)),
        (429, (T, "http_429", False, False)),
    ],
)
def test_sendgrid_table(status: int, expected: tuple[object, ...]) -> None:
    assert outcome(classify_sendgrid(status, {})) == expected


def test_sendgrid_reset_epoch_becomes_a_delay_and_errors_give_the_message() -> None:
    limited = classify_sendgrid(429, {"X-RateLimit-Reset": "1030"}, None, now=1000.0)
    assert limited.retry_after_s == 30
    assert classify_sendgrid(429, {"X-RateLimit-Reset": "900"}, None, now=1000.0).retry_after_s == 0
    body = b'{"errors": [{"message": "Invalid from", "field": "from"}]}'
    assert classify_sendgrid(400, {}, body).detail == "Invalid from"
    ok = classify_sendgrid(202, {"X-Message-Id": "abc"})
    assert (ok.outcome, ok.provider_message_id) == (Outcome.SENT, "abc")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, (Outcome.SENT, None, False, False)),
        (204, (Outcome.SENT, None, False, False)),
        (410, (P, "http_410", True, False)),
        (413, (P, "payload_too_large", False, False)),
        (408, (T, "http_408", False, False)),
        (429, (T, "http_429", False, False)),
        (502, (T, "http_502", False, False)),
        (404, (P, "http_404", False, False)),
        (301, (P, "http_301", False, False)),
    ],
)
def test_webhook_table(status: int, expected: tuple[object, ...]) -> None:
    assert outcome(classify_webhook(status, httpx.Headers())) == expected


def fcm_error(cls: type[fb.FirebaseError], message: str = "m", **headers: str) -> fb.FirebaseError:
    response = httpx.Response(500, headers=headers)
    return cls(message, http_response=response)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (fcm_error(messaging.UnregisteredError), (P, "fcm:UNREGISTERED", True, False)),
        (fcm_error(messaging.SenderIdMismatchError), (P, "fcm:SENDER_ID_MISMATCH", True, False)),
        (
            fcm_error(fb.InvalidArgumentError, "Message is too big"),
            (P, "payload_too_large", False, False),
        ),
        (
            fcm_error(fb.InvalidArgumentError, "bad token"),
            (P, "fcm:INVALID_ARGUMENT", False, False),
        ),
        (fcm_error(messaging.QuotaExceededError), (T, "fcm:QUOTA_EXCEEDED", False, False)),
        (fcm_error(fb.UnavailableError), (T, "fcm:UNAVAILABLE", False, False)),
        (fcm_error(fb.InternalError), (T, "fcm:INTERNAL", False, False)),
        (
            fcm_error(messaging.ThirdPartyAuthError),
            (T, "fcm:THIRD_PARTY_AUTH_ERROR (credential)", False, False),
        ),
        (fcm_error(fb.UnauthenticatedError), (T, "fcm:UNAUTHENTICATED (credential)", False, False)),
        (fcm_error(fb.NotFoundError), (P, "fcm:NOT_FOUND", False, False)),
        (fcm_error(fb.DeadlineExceededError), (T, "timeout", False, False)),
        (RuntimeError("boom"), (T, "error:RuntimeError", False, False)),
    ],
)
def test_fcm_table(exc: BaseException, expected: tuple[object, ...]) -> None:
    assert outcome(classify_fcm_error(exc)) == expected


def test_fcm_quota_keeps_retry_after() -> None:
    exc = fcm_error(messaging.QuotaExceededError, **{"Retry-After": "12"})
    assert classify_fcm_error(exc).retry_after_s == 12


def test_retry_after_and_ttl() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Tue, 01 Jan 2030 00:00:30 GMT", now=NOW.timestamp()) == 30
    assert ttl_seconds(make(), now=NOW) is None
    assert ttl_seconds(make(expires_at=NOW + timedelta(seconds=90.2)), now=NOW) == 91
    assert ttl_seconds(make(expires_at=NOW - timedelta(seconds=5)), now=NOW) == 1


class Scripted(GuardedSender):
    provider = "test"

    def __init__(self, action: str, timeout_s: float = 0.2) -> None:
        super().__init__(timeout_s)
        self.action = action

    async def _send(self, delivery: Delivery) -> SendResult:
        if self.action == "hang":
            await asyncio.sleep(10)
        if self.action == "raise":
            raise RuntimeError(f"cannot reach {delivery.target.address}")
        if self.action == "echo":
            return SendResult(P, "x", f"{delivery.target.address} is invalid")
        return sent("m1")


async def test_guard_turns_hangs_raises_and_addresses_into_safe_results() -> None:
    d = make()
    assert (await Scripted("ok").send(d)).provider_message_id == "m1"
    assert outcome(await Scripted("hang").send(d)) == (T, "timeout", False, False)
    raised = await Scripted("raise").send(d)
    assert outcome(raised) == (T, "error:RuntimeError", False, False)
    for result in (raised, await Scripted("echo").send(d)):
        assert result.detail is not None and "+15551230001" not in result.detail
        assert "+15" in result.detail  # masked, still recognisable


async def test_guard_lets_cancellation_through() -> None:
    task = asyncio.create_task(Scripted("hang", timeout_s=5).send(make()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_result_is_frozen() -> None:
    result = SendResult(Outcome.SENT)
    with pytest.raises(AttributeError):
        result.outcome = Outcome.PERMANENT  # type: ignore[misc]
