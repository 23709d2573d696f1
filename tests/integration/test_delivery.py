"""Delivery through the real provider SDKs to the sandbox: success per channel, transient
errors retried until delivered, permanent errors dead-lettered with the target removed,
payloads too large, and the idempotency ledger. Real broker, one real worker."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from devenv.sandbox import Sandbox
from schemas.common import Channel, Lane
from streams.catalog import CONTACTS, DLQ_DELIVERIES, PREFERENCES, RECEIPTS, delivery_topic
from tests.factories import delivery_bytes, event_dict
from tests.integration.conftest import Pipeline
from tests.integration.delivery_env import (
    apns_token,
    delivering_pipeline,
    email,
    fcm_token,
    for_user,
    header,
    phone,
    records_where,
    set_contacts,
    value,
    wait_for_sends,
)
from tests.integration.kafka_io import produce, produce_json

IMAGE = "https://cdn.example.com/media/sha256-3f1c.jpg"


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox
) -> Iterator[Pipeline]:
    with delivering_pipeline(kafka_bootstrap, tmp_path_factory.mktemp("delivery"), sandbox) as p:
        yield p


async def send_delivery(p: Pipeline, channel: Channel, uid: str, address: str, **kw: Any) -> str:
    raw = delivery_bytes(channel.value, uid, address, **kw)
    await produce(p.bootstrap, p.topic(delivery_topic(channel, Lane.HIGH)), [raw], key=uid.encode())
    return str(json.loads(raw)["delivery_id"])


async def receipts(p: Pipeline, uid: str, n: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    return [value(r) for r in await records_where(p, RECEIPTS, for_user(uid), n, timeout_s)]


# -- success ------------------------------------------------------------------------------


async def test_every_channel_delivers_through_its_provider(
    pipeline: Pipeline, sandbox: Sandbox, uid: str
) -> None:
    fcm, apns, mail, sms = fcm_token(), apns_token(), email(), phone()
    hook = sandbox.webhook_url(uid)
    await set_contacts(
        pipeline,
        uid,
        devices=[{"token": fcm, "platform": "fcm"}, {"token": apns, "platform": "apns"}],
        email=mail,
        phone=sms,
        webhook_url=hook,
    )
    alert = event_dict(
        "security_alert",
        recipient_id=uid,
        object={"kind": "session", "id": "s1", "image_url": IMAGE},
    )
    await produce_json(pipeline.bootstrap, pipeline.topic("events.security"), alert, uid)
    comment = event_dict("comment", recipient_id=uid)
    await produce_json(pipeline.bootstrap, pipeline.topic("events.social"), comment, uid)

    [push] = await wait_for_sends(sandbox, "fcm", fcm)
    [apple] = await wait_for_sends(sandbox, "apns", apns)
    [mailed] = await wait_for_sends(sandbox, "sendgrid", mail)
    [texted] = await wait_for_sends(sandbox, "twilio", sms)
    [hooked] = await wait_for_sends(sandbox, "webhook", uid)
    # Rich media travels by reference: FCM's notification image, APNs' mutable content.
    assert push.payload["notification"]["image"] == IMAGE
    assert apple.payload["aps"]["mutable-content"] == 1
    assert apple.payload["image_url"] == IMAGE
    assert IMAGE in json.dumps(mailed.payload)
    assert texted.payload["To"] == sms
    assert hooked.payload["recipient_id"] == uid and hooked.payload["category"] == "comment"
    # Every send carries its delivery id, and each has a `sent` receipt.
    ids = {r.delivery_id for r in (push, apple, mailed, texted, hooked)}
    assert None not in ids
    got = await receipts(pipeline, uid, 6)
    sent = {r["delivery_id"] for r in got if r["status"] == "sent"}
    assert ids <= sent


async def test_a_redelivered_delivery_is_skipped_by_the_ledger(
    pipeline: Pipeline, sandbox: Sandbox, uid: str
) -> None:
    token = fcm_token()
    raw = delivery_bytes("push", uid, token, platform="fcm")
    topic = pipeline.topic(delivery_topic(Channel.PUSH, Lane.HIGH))
    await produce(pipeline.bootstrap, topic, [raw], key=uid.encode())
    await wait_for_sends(sandbox, "fcm", token)
    await produce(pipeline.bootstrap, topic, [raw, raw], key=uid.encode())  # replays
    got = await receipts(pipeline, uid, 3)
    assert sorted(r["status"] for r in got) == ["sent", "skipped", "skipped"]
    assert len(sandbox.sends("fcm", token)) == 1


async def produce_batch(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """(key, value) records in one go, as raw bytes, the way a client's batch goes out."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def test_two_copies_of_a_delivery_in_flight_are_sent_once(
    pipeline: Pipeline, sandbox: Sandbox, uid: str
) -> None:
    # 100 deliveries (FCM and APNs) produced twice in a row, as a producer retry does. The
    # first send of each is slowed down so its copy arrives while it is still in flight,
    # which the ledger (written after a send) cannot see.
    users = [f"{uid}-{i}" for i in range(10)]
    records: list[tuple[bytes, bytes]] = []
    for i in range(100):
        platform = "fcm" if i % 2 else "apns"
        token = fcm_token() if platform == "fcm" else apns_token()
        sandbox.inject(platform, target=token, latency_ms=1500, times=1)
        user = users[i % len(users)]
        records.append((user.encode(), delivery_bytes("push", user, token, platform=platform)))
    ids = {str(json.loads(raw)["delivery_id"]) for _key, raw in records}
    topic = pipeline.topic(delivery_topic(Channel.PUSH, Lane.HIGH))
    await produce_batch(pipeline.bootstrap, topic, records + records)

    keys = {u.encode() for u in users}
    got = await records_where(pipeline, RECEIPTS, lambda r: r.key in keys, n=200, timeout_s=60)
    await asyncio.sleep(1.0)  # a second send, if there were one, would be in by now
    sends = Counter(s.delivery_id for s in sandbox.sends() if s.delivery_id in ids)
    twice = sorted(d for d, n in sends.items() if n > 1)
    assert len(sends) == 100 and not twice, f"{len(twice)} of 100 sent more than once"
    by_id: dict[str, list[tuple[str, str | None]]] = {}
    for r in map(value, got):
        by_id.setdefault(r["delivery_id"], []).append((r["status"], r.get("reason")))
    assert set(by_id) == ids
    for delivery, statuses in by_id.items():
        assert sorted(statuses) == [("sent", None), ("skipped", "already_sent")], delivery


# -- transient errors: retried until delivered ---------------------------------------------

TRANSIENT = [
    # (channel, provider, platform, fault)
    ("push", "fcm", "fcm", {"error": "QUOTA_EXCEEDED", "retry_after_s": 1}),
    ("push", "fcm", "fcm", {"error": "UNAVAILABLE"}),
    ("push", "apns", "apns", {"error": "TooManyRequests"}),
    ("push", "apns", "apns", {"error": "ServiceUnavailable"}),
    ("push", "apns", "apns", {"timeout": True, "hang_s": 5}),
    ("email", "sendgrid", None, {"status": 429, "retry_after_s": 1}),
    ("email", "sendgrid", None, {"status": 500}),
    ("sms", "twilio", None, {"error": "20429", "status": 429}),
    ("sms", "twilio", None, {"status": 503, "error": "20503"}),
    ("webhook", "webhook", None, {"status": 503}),
    ("webhook", "webhook", None, {"status": 429, "retry_after_s": 1}),
    ("webhook", "webhook", None, {"timeout": True, "hang_s": 5}),
]


def target_for(provider: str, sandbox: Sandbox, uid: str) -> tuple[str, str]:
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
            return sandbox.webhook_url(uid), uid
    return t, t


@pytest.mark.parametrize(("channel", "provider", "platform", "fault"), TRANSIENT)
async def test_transient_errors_are_retried_until_delivered(
    pipeline: Pipeline,
    sandbox: Sandbox,
    uid: str,
    channel: str,
    provider: str,
    platform: str | None,
    fault: dict[str, Any],
) -> None:
    address, name = target_for(provider, sandbox, uid)
    # Twice: the first try and the first retry fail. (The FCM sender turns firebase-admin's
    # own retries off, so each try is one request; sinks/providers/fcm.py says why.)
    sandbox.inject(provider, target=name, times=2, **fault)
    delivery = await send_delivery(pipeline, Channel(channel), uid, address, platform=platform)
    sends = await wait_for_sends(sandbox, provider, name, timeout_s=45)
    assert [s.delivery_id for s in sends] == [delivery]
    # Webhooks retry in place (per-target order) and have no `retrying` receipt.
    in_place = channel == "webhook"
    got = await receipts(pipeline, uid, 1 if in_place else 2, timeout_s=45)
    statuses = [r["status"] for r in got]
    assert statuses[-1] == "sent"
    assert in_place or "retrying" in statuses
    await asyncio.sleep(1.0)
    assert len(sandbox.sends(provider, name)) == 1  # delivered once, not once per try


async def test_retries_give_up_into_the_dead_letter_topic(
    pipeline: Pipeline, sandbox: Sandbox, uid: str
) -> None:
    address = email()
    sandbox.inject("sendgrid", target=address, status=503)  # forever
    delivery = await send_delivery(pipeline, Channel.EMAIL, uid, address)
    [dead] = await records_where(pipeline, DLQ_DELIVERIES, for_user(uid), timeout_s=60)
    assert header(dead, "clarion.dlq.reason") == "retries_exhausted:http_503"
    assert header(dead, "clarion.dlq.attempts") == "6"
    assert value(dead)["delivery_id"] == delivery
    sandbox.clear_faults("sendgrid")
    assert sandbox.sends("sendgrid", address) == []


# -- permanent errors: dead letter, target removed ---------------------------------------

PERMANENT = [
    # (event type, ingress topic, provider, contact field, fault, dlq reason)
    ("message", "events.messaging", "fcm", "fcm", {"error": "UNREGISTERED"}, "fcm:UNREGISTERED"),
    ("message", "events.messaging", "apns", "apns", {"error": "Unregistered"}, "apns:Unregistered"),
    (
        "message",
        "events.messaging",
        "apns",
        "apns",
        {"error": "BadDeviceToken"},
        "apns:BadDeviceToken",
    ),
    ("security_alert", "events.security", "twilio", "phone", {"error": "21211"}, "twilio:21211"),
    ("comment", "events.social", "webhook", "webhook_url", {"status": 410}, "http_410"),
]


@pytest.mark.parametrize(("kind", "ingress", "provider", "field", "fault", "reason"), PERMANENT)
async def test_permanent_errors_dead_letter_and_remove_the_target(
    pipeline: Pipeline,
    sandbox: Sandbox,
    uid: str,
    kind: str,
    ingress: str,
    provider: str,
    field: str,
    fault: dict[str, Any],
    reason: str,
) -> None:
    keep = fcm_token()  # a second device that stays
    if field in ("fcm", "apns"):
        address = fcm_token() if field == "fcm" else apns_token()
        name = address
        points: dict[str, Any] = {
            "devices": [{"token": address, "platform": field}, {"token": keep, "platform": "fcm"}]
        }
    elif field == "phone":
        address = name = phone()
        points = {"phone": address, "devices": [{"token": keep, "platform": "fcm"}]}
    else:
        address, name = sandbox.webhook_url(uid), uid
        points = {"webhook_url": address, "devices": [{"token": keep, "platform": "fcm"}]}
    await set_contacts(pipeline, uid, **points)
    sandbox.inject(provider, target=name, **fault)
    event = event_dict(kind, recipient_id=uid)
    await produce_json(pipeline.bootstrap, pipeline.topic(ingress), event, uid)

    [dead] = await records_where(pipeline, DLQ_DELIVERIES, for_user(uid), timeout_s=45)
    assert header(dead, "clarion.dlq.reason") == reason
    assert header(dead, "clarion.dlq.attempts") == "1"  # no retry
    assert value(dead)["target"]["address"] == address  # the original delivery bytes
    # The dead address is gone from the user's contact points; the other device stays.
    updates = await records_where(pipeline, CONTACTS, for_user(uid), n=2)
    latest = value(updates[-1])
    assert address not in json.dumps(latest)
    assert [d["token"] for d in latest["devices"]] == [keep]
    assert sandbox.sends(provider, name) == []
    got = await receipts(pipeline, uid, 2)
    assert any(r["status"] == "failed" and r["reason"] == reason for r in got)


async def test_stop_reply_is_recorded_as_an_sms_opt_out(
    pipeline: Pipeline, sandbox: Sandbox, uid: str
) -> None:
    number = phone()
    await set_contacts(pipeline, uid, phone=number)
    sandbox.inject("twilio", target=number, error="21610")
    event = event_dict("security_alert", recipient_id=uid)
    await produce_json(pipeline.bootstrap, pipeline.topic("events.security"), event, uid)
    [dead] = await records_where(pipeline, DLQ_DELIVERIES, for_user(uid), timeout_s=45)
    assert header(dead, "clarion.dlq.reason") == "twilio:21610"
    [prefs] = await records_where(pipeline, PREFERENCES, for_user(uid))
    assert value(prefs)["disabled_channels"] == ["sms"]
    # The number is not removed: the person still has it, they just said STOP.
    updates = await records_where(pipeline, CONTACTS, for_user(uid), n=2, timeout_s=3)
    assert len(updates) == 1


async def test_a_sendgrid_bounce_removes_the_address(
    pipeline: Pipeline, sandbox: Sandbox, uid: str
) -> None:
    address = email()
    await set_contacts(pipeline, uid, email=address)
    sandbox.inject("sendgrid", target=address, error="bounce")
    event = event_dict("payment", recipient_id=uid)
    await produce_json(pipeline.bootstrap, pipeline.topic("events.payments"), event, uid)
    # SendGrid accepted it (202) and reported the bounce later, signed, to the worker.
    [accepted] = await wait_for_sends(sandbox, "sendgrid", address)
    [dead] = await records_where(pipeline, DLQ_DELIVERIES, for_user(uid), timeout_s=45)
    assert header(dead, "clarion.dlq.reason").startswith("sendgrid:")
    assert value(dead)["delivery_id"] == accepted.delivery_id
    updates = await records_where(pipeline, CONTACTS, for_user(uid), n=2)
    assert value(updates[-1]).get("email") is None


async def test_event_webhook_with_a_bad_signature_is_refused(pipeline: Pipeline) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{pipeline.url}/providers/sendgrid/events",
            content=b'[{"event": "bounce"}]',
            headers={
                "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQDforged",
                "X-Twilio-Email-Event-Webhook-Timestamp": "1790000000",
            },
        )
    assert r.status_code == 403


# -- payload too large --------------------------------------------------------------------

TOO_LARGE = [
    ("push", "fcm", "fcm", 5000),
    ("push", "apns", "apns", 5000),
    ("sms", "twilio", None, 1700),
    ("webhook", "webhook", None, 0),
]


@pytest.mark.parametrize(("channel", "provider", "platform", "body_chars"), TOO_LARGE)
async def test_payload_too_large_is_dead_lettered_without_retry(
    pipeline: Pipeline,
    sandbox: Sandbox,
    uid: str,
    channel: str,
    provider: str,
    platform: str | None,
    body_chars: int,
) -> None:
    address, name = target_for(provider, sandbox, uid)
    if provider == "webhook":  # a consumer's own limit
        sandbox.inject("webhook", target=name, status=413)
    await send_delivery(
        pipeline, Channel(channel), uid, address, platform=platform, body="x" * body_chars
    )
    [dead] = await records_where(pipeline, DLQ_DELIVERIES, for_user(uid), timeout_s=45)
    assert header(dead, "clarion.dlq.reason") == "payload_too_large"
    assert header(dead, "clarion.dlq.attempts") == "1"
    assert sandbox.sends(provider, name) == []


async def test_oversized_email_is_refused_by_sendgrid(
    pipeline: Pipeline, sandbox: Sandbox, uid: str, tmp_path: Path
) -> None:
    address = email()
    # SendGrid's limit is 30 MB per request; Kafka's default record limit is 1 MB, so the
    # over-size answer is injected as SendGrid gives it.
    sandbox.inject("sendgrid", target=address, status=413)
    await send_delivery(pipeline, Channel.EMAIL, uid, address)
    [dead] = await records_where(pipeline, DLQ_DELIVERIES, for_user(uid), timeout_s=45)
    assert header(dead, "clarion.dlq.reason") == "payload_too_large"
