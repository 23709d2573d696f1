"""Delivery end to end: a real worker on a real broker, every channel through the real
provider SDKs to the sandbox, and what needs the worker's HTTP side (SendGrid's signed event
webhook). Each sink's decisions (retries, dead letters, the ledger, payloads too large,
target removal) are tested in-process in tests/stages/test_deliver.py and test_feedback.py;
retries until delivered across a provider outage in test_outage.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devenv.sandbox import Sandbox
from schemas.common import Channel, Lane
from streams.catalog import CONTACTS, DLQ_DELIVERIES, RECEIPTS, delivery_topic
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


# -- provider feedback over HTTP ----------------------------------------------------------


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


# -- SendGrid's over-size answer ----------------------------------------------------------


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
