"""The provider sinks (sinks/deliver.py), in-process: a delivery record goes through the
real SDK (firebase-admin, aioapns, sendgrid, twilio, httpx) to the local provider sandbox
(devenv/sandbox, an HTTP server on its own thread in this process), and the sink writes
its outcome: ledger row and receipt, retry request, or dead letter and profile update."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devenv.sandbox import Sandbox
from schemas.common import Channel, Lane
from schemas.control import RetryRequest
from schemas.users import Preferences
from sinks.providers import ProviderSettings
from streams import metrics
from streams.app import build_app
from tests.factories import delivery_bytes
from tests.stages.conftest import stage_settings
from tests.stages.harness import Record, StageHarness
from tests.stages.inputs import DELIVERY_DLQ_HEADERS, contacts

UID = "alice"
IMAGE = "https://cdn.example.com/media/sha256-3f1c.jpg"


def fcm_token() -> str:
    return "fcm-" + secrets.token_hex(12)


def apns_token() -> str:
    return secrets.token_hex(32)


def phone() -> str:
    return "+1555" + "".join(str(secrets.randbelow(10)) for _ in range(7))


def email() -> str:
    return f"{secrets.token_hex(5)}@example.com"


def receipts(stage: StageHarness) -> list[dict[str, Any]]:
    return [r.json() for r in stage.sent(stage.ctx.topics.receipts, key=UID)]


def statuses(stage: StageHarness) -> list[tuple[str, str | None]]:
    return [(r["status"], r.get("reason")) for r in receipts(stage)]


def sample(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def dead_letters(stage: StageHarness) -> list[Record]:
    return stage.sent(stage.ctx.topics.dlq_deliveries, key=UID)


def ledger_key_of(delivery_id: str) -> bytes:
    """The ledger row of a delivery (sinks/deliver.py ledger_key)."""
    return f"{UID}\x1f{delivery_id}".encode()


def a_delivery(channel: str, address: str, **kw: Any) -> tuple[bytes, str]:
    raw = delivery_bytes(channel, UID, address, **kw)
    return raw, str(json.loads(raw)["delivery_id"])


async def test_every_channel_delivers_through_its_provider(
    delivering: StageHarness, sb: Sandbox
) -> None:
    fcm, apns, mail, sms = fcm_token(), apns_token(), email(), phone()
    hook = sb.webhook_url(UID)
    ids: dict[str, str] = {}
    cases = [
        ("push", "fcm", fcm, "fcm"),
        ("push", "apns", apns, "apns"),
        ("email", "sendgrid", mail, None),
        ("sms", "twilio", sms, None),
        ("webhook", "webhook", hook, None),
    ]
    for channel, provider, address, platform in cases:
        raw, ids[provider] = a_delivery(channel, address, platform=platform, image_url=IMAGE)
        async with delivering.run(f"sink.{channel}.high") as sink:
            await sink.put(raw, key=UID)

    [push] = sb.sends("fcm", fcm)
    [apple] = sb.sends("apns", apns)
    [mailed] = sb.sends("sendgrid", mail)
    [texted] = sb.sends("twilio", sms)
    [hooked] = sb.sends("webhook", UID)
    # Rich media travels by reference: FCM's notification image, APNs' mutable content.
    assert push.payload["notification"]["image"] == IMAGE
    assert apple.payload["aps"]["mutable-content"] == 1
    assert apple.payload["image_url"] == IMAGE
    assert IMAGE in json.dumps(mailed.payload)
    assert texted.payload["To"] == sms
    assert hooked.payload["recipient_id"] == UID
    sends = {"fcm": push, "apns": apple, "sendgrid": mailed, "twilio": texted, "webhook": hooked}
    assert {p: s.delivery_id for p, s in sends.items()} == ids
    assert sorted(
        r["delivery_id"] for r in receipts(delivering) if r["status"] == "sent"
    ) == sorted(ids.values())
    # Each send is in the idempotency ledger.
    ledger = delivering.ctx.tables.ledger
    assert all(ledger.data.get(ledger_key_of(i)) for i in ids.values())


async def test_a_redelivered_delivery_is_skipped_by_the_ledger(
    delivering: StageHarness, sb: Sandbox
) -> None:
    token = fcm_token()
    raw, _ = a_delivery("push", token, platform="fcm")
    async with delivering.run("sink.push.high") as sink:
        await sink.put(raw, key=UID)
        await sink.put(raw, key=UID)  # a redelivery after a rebalance, a replay
        await sink.put(raw, key=UID)

    assert statuses(delivering) == [
        ("sent", None),
        ("skipped", "already_sent"),
        ("skipped", "already_sent"),
    ]
    assert len(sb.sends("fcm", token)) == 1


async def test_two_copies_in_flight_are_sent_once(delivering: StageHarness, sb: Sandbox) -> None:
    """A copy that arrives while the first is still being sent (a producer retry wrote the
    batch twice) waits for the first's outcome: the ledger, written after the send, could
    not stop it."""
    token = apns_token()
    sb.inject("apns", target=token, latency_ms=400, times=1)
    raw, delivery = a_delivery("push", token, platform="apns")
    async with delivering.run("sink.push.high") as sink:
        first = await sink.put(raw, key=UID, wait=False)
        copy = await sink.put(raw, key=UID, wait=False)
        await sink.settle([first, copy])

    assert sorted(statuses(delivering)) == [("sent", None), ("skipped", "already_sent")]
    assert [s.delivery_id for s in sb.sends("apns", token)] == [delivery]


TRANSIENT = [
    # (channel, provider, platform, fault, retry-after floor)
    ("push", "fcm", "fcm", {"error": "QUOTA_EXCEEDED", "retry_after_s": 1}, 1.0),
    ("push", "apns", "apns", {"error": "ServiceUnavailable"}, 0.0),
    # SendGrid says when as X-RateLimit-Reset, a whole epoch second: at least 1 s of 2.
    ("email", "sendgrid", None, {"status": 429, "retry_after_s": 2}, 1.0),
    ("sms", "twilio", None, {"status": 503, "error": "20503"}, 0.0),
]


def target(provider: str, sb: Sandbox) -> tuple[str, str]:
    """(address to deliver to, the sandbox's name for it)."""
    match provider:
        case "fcm":
            t = fcm_token()
        case "apns":
            t = apns_token()
        case "sendgrid":
            t = email()
        case "twilio":
            t = phone()
        case _:
            return sb.webhook_url(UID), UID
    return t, t


@pytest.mark.parametrize(("channel", "provider", "platform", "fault", "floor_s"), TRANSIENT)
async def test_a_transient_failure_becomes_a_retry_request(
    delivering: StageHarness,
    sb: Sandbox,
    channel: str,
    provider: str,
    platform: str | None,
    fault: dict[str, Any],
    floor_s: float,
) -> None:
    address, name = target(provider, sb)
    sb.inject(provider, target=name, times=1, **fault)
    raw, delivery = a_delivery(channel, address, platform=platform)
    before = datetime.now(UTC)
    async with delivering.run(f"sink.{channel}.high") as sink:
        await sink.put(raw, key=UID)

    [record] = delivering.sent(delivering.ctx.topics.retries, key=UID)
    request = RetryRequest.model_validate(record.json())
    assert request.delivery.delivery_id == delivery
    assert request.delivery.attempt == 1  # the next try
    assert request.due_at >= before + timedelta(seconds=floor_s)  # never before Retry-After
    assert [s for s, _ in statuses(delivering)] == ["retrying"]
    assert dead_letters(delivering) == []
    assert sb.sends(provider, name) == []  # the provider did not take it
    assert delivering.ctx.tables.ledger.data.get(ledger_key_of(delivery)) is None


async def test_a_failing_webhook_is_retried_in_place_until_delivered(
    delivering: StageHarness, sb: Sandbox
) -> None:
    """Webhooks promise per-target order: no retry topic, the sink retries behind the
    target's chain."""
    hook = sb.webhook_url(UID)
    sb.inject("webhook", target=UID, status=503, times=2)
    raw, delivery = a_delivery("webhook", hook)
    async with delivering.run("sink.webhook.high") as sink:
        await sink.put(raw, key=UID)

    assert [s.delivery_id for s in sb.sends("webhook", UID)] == [delivery]
    assert statuses(delivering) == [("sent", None)]
    assert delivering.sent(delivering.ctx.topics.retries) == []


async def test_the_last_try_failing_goes_to_the_dead_letter_topic(
    delivering: StageHarness, sb: Sandbox
) -> None:
    address = email()
    sb.inject("sendgrid", target=address, status=503)  # forever
    max_attempts = delivering.ctx.settings.retry_max_attempts
    raw, delivery = a_delivery("email", address, attempt=max_attempts - 1)
    async with delivering.run("sink.email.high") as sink:
        await sink.put(raw, key=UID)

    [dead] = dead_letters(delivering)
    assert dead.header("clarion.dlq.reason") == "retries_exhausted:http_503"
    assert dead.header("clarion.dlq.attempts") == str(max_attempts)
    assert dead.value == raw  # the delivery's bytes untouched
    assert statuses(delivering) == [("dead_lettered", "retries_exhausted:http_503")]
    assert delivering.sent(delivering.ctx.topics.retries) == []
    assert json.loads(dead.value)["delivery_id"] == delivery


PERMANENT = [
    # (channel, provider, platform, contact field, fault, dlq reason)
    ("push", "fcm", "fcm", "devices", {"error": "UNREGISTERED"}, "fcm:UNREGISTERED"),
    ("push", "apns", "apns", "devices", {"error": "Unregistered"}, "apns:Unregistered"),
    ("push", "apns", "apns", "devices", {"error": "BadDeviceToken"}, "apns:BadDeviceToken"),
    ("sms", "twilio", None, "phone", {"error": "21211"}, "twilio:21211"),
    ("webhook", "webhook", None, "webhook_url", {"status": 410}, "http_410"),
]


@pytest.mark.parametrize(("channel", "provider", "platform", "field", "fault", "reason"), PERMANENT)
async def test_a_permanent_failure_is_dead_lettered_and_the_target_removed(
    delivering: StageHarness,
    sb: Sandbox,
    channel: str,
    provider: str,
    platform: str | None,
    field: str,
    fault: dict[str, Any],
    reason: str,
) -> None:
    address, name = target(provider, sb)
    keep = fcm_token()  # a second device that stays
    devices = [{"token": keep, "platform": "fcm"}]
    if field == "devices":
        devices.insert(0, {"token": address, "platform": platform})
        points: dict[str, Any] = {"devices": devices}
    else:
        points = {"devices": devices, field: address}
    delivering.seed(delivering.ctx.tables.contacts, UID, contacts(UID, email=None, **points))
    sb.inject(provider, target=name, **fault)
    raw, delivery = a_delivery(channel, address, platform=platform)
    counted = {"lane": "high", "channel": channel}
    outcomes = "clarion_delivery_outcomes_total"
    failed = sample(outcomes, **counted, status="failed")
    dlq_total = "clarion_deliveries_dead_lettered_total"
    dead_before = sample(dlq_total, **counted, provider=provider, status="failed")
    async with delivering.run(f"sink.{channel}.high") as sink:
        event = await sink.put(raw, key=UID)

    [dead] = dead_letters(delivering)
    assert dead.value == raw
    # The header set and the metrics of every dead-lettered delivery (feedback's too).
    assert set(dead.headers) == DELIVERY_DLQ_HEADERS
    assert dead.header("clarion.dlq.delivery_id") == delivery
    assert sample(outcomes, **counted, status="failed") == failed + 1
    assert sample(dlq_total, **counted, provider=provider, status="failed") == dead_before + 1
    assert dead.header("clarion.dlq.reason") == reason
    assert dead.header("clarion.dlq.attempts") == "1"  # no retry
    assert dead.header("clarion.dlq.channel") == channel
    assert dead.header("clarion.dlq.provider") == provider
    source = (event.message.topic, event.message.partition, event.message.offset)
    assert (
        dead.header("clarion.dlq.source.topic"),
        int(dead.header("clarion.dlq.source.partition")),
        int(dead.header("clarion.dlq.source.offset")),
    ) == source
    assert statuses(delivering) == [("failed", reason)]
    assert delivering.sent(delivering.ctx.topics.retries) == []
    # The dead address is gone from the user's contact points; the other device stays.
    [update] = delivering.sent(delivering.ctx.topics.contacts, key=UID)
    latest = update.json()
    assert address not in json.dumps(latest)
    assert [d["token"] for d in latest["devices"]] == [keep]
    assert sb.sends(provider, name) == []
    assert json.loads(dead.value)["delivery_id"] == delivery


async def test_a_stop_reply_is_recorded_as_an_sms_opt_out(
    delivering: StageHarness, sb: Sandbox
) -> None:
    number = phone()
    delivering.seed(delivering.ctx.tables.contacts, UID, contacts(UID, phone=number))
    sb.inject("twilio", target=number, error="21610")
    raw, _ = a_delivery("sms", number)
    async with delivering.run("sink.sms.high") as sink:
        await sink.put(raw, key=UID)

    [dead] = dead_letters(delivering)
    assert dead.header("clarion.dlq.reason") == "twilio:21610"
    [prefs] = delivering.sent(delivering.ctx.topics.preferences, key=UID)
    assert Preferences.model_validate_json(prefs.value or b"").disabled_channels == {Channel.SMS}
    # The number is not removed: the person still has it, they just said STOP.
    assert delivering.sent(delivering.ctx.topics.contacts) == []


TOO_LARGE = [
    ("push", "fcm", "fcm", 5000),
    ("push", "apns", "apns", 5000),
    ("sms", "twilio", None, 1700),
    # A consumer's own limit, and SendGrid's 30 MB (over Kafka's record size: answered as
    # SendGrid gives it).
    ("webhook", "webhook", None, 0),
    ("email", "sendgrid", None, 0),
]


@pytest.mark.parametrize(("channel", "provider", "platform", "body_chars"), TOO_LARGE)
async def test_a_payload_too_large_is_dead_lettered_without_retry(
    delivering: StageHarness,
    sb: Sandbox,
    channel: str,
    provider: str,
    platform: str | None,
    body_chars: int,
) -> None:
    address, name = target(provider, sb)
    if not body_chars:
        sb.inject(provider, target=name, status=413)
    body = "x" * body_chars if body_chars else "hey there"
    raw, _ = a_delivery(channel, address, platform=platform, body=body)
    async with delivering.run(f"sink.{channel}.high") as sink:
        await sink.put(raw, key=UID)

    [dead] = dead_letters(delivering)
    assert dead.header("clarion.dlq.reason") == "payload_too_large"
    assert dead.header("clarion.dlq.attempts") == "1"
    assert sb.sends(provider, name) == []


async def test_an_expired_delivery_is_not_sent(delivering: StageHarness, sb: Sandbox) -> None:
    token = fcm_token()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    raw, _ = a_delivery("push", token, platform="fcm", expires_at=past)
    async with delivering.run("sink.push.high") as sink:
        await sink.put(raw, key=UID)

    assert statuses(delivering) == [("expired", "ttl_elapsed")]
    assert sb.sends("fcm", token) == []
    assert dead_letters(delivering) == []


async def test_each_lane_has_its_own_sink(delivering: StageHarness, sb: Sandbox) -> None:
    token = fcm_token()
    raw, delivery = a_delivery("push", token, platform="fcm", lane="critical")
    async with delivering.run("sink.push.critical") as sink:
        await sink.put(raw, key=UID)

    assert [s.delivery_id for s in sb.sends("fcm", token)] == [delivery]
    [receipt] = receipts(delivering)
    assert (receipt["status"], receipt["lane"]) == ("sent", Lane.CRITICAL.value)
    assert delivering.ctx.tables.ledger.data.get(ledger_key_of(delivery)) is not None


async def test_a_marketing_batch_goes_out_in_few_requests_each_delivery_on_its_own(
    tmp_path: Path, sb: Sandbox, sandbox_providers: ProviderSettings
) -> None:
    """With SendGrid configured the email sink keeps 2 x its batch size in flight, whatever
    CLARION_SINK_CONCURRENCY says (50 here: at most 50 per request otherwise), so one mail
    to 600 recipients is a few requests; every delivery still has its own ledger row and
    receipt."""
    app = build_app(
        stage_settings(tmp_path, sink_concurrency=50),
        store="memory://",
        providers=sandbox_providers,
    )
    stage = StageHarness(app)
    sb.inject("sendgrid", latency_ms=200)
    records = [
        a_delivery("email", f"user{i}@example.com", lane="bulk", category="marketing")
        for i in range(600)
    ]
    try:
        async with stage.run("sink.email.bulk") as sink:
            events = [await sink.put(raw, key=UID, wait=False) for raw, _ in records]
            await sink.settle(events)
    finally:
        for sender in app.ctx.senders.values():
            await sender.aclose()

    ids = sorted(d for _, d in records)
    assert sorted(s.delivery_id or "" for s in sb.sends("sendgrid")) == ids
    assert sb.requests("sendgrid") <= 3  # 600 / 50 = 12 with the sink's own limit
    sent = [r for r in receipts(stage) if r["status"] == "sent"]
    assert sorted(r["delivery_id"] for r in sent) == ids
    ledger = stage.ctx.tables.ledger
    assert all(ledger.data.get(ledger_key_of(i)) for i in ids)
