"""The foundation slice end to end: real broker, real `clarion worker` subprocess."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas.common import Channel, Lane
from streams.catalog import CONTACTS, DLQ_EVENTS, PREFERENCES, RECEIPTS, delivery_topic
from tests.factories import event_bytes, event_dict
from tests.integration.conftest import Pipeline, wait_for_changelog
from tests.integration.kafka_io import collect, produce, produce_json, values

pytestmark = pytest.mark.integration

ALL_DELIVERY_TOPICS = [delivery_topic(c, lane) for c in Channel for lane in Lane]


def contacts(uid: str) -> dict[str, Any]:
    return {
        "user_id": uid,
        "devices": [{"token": f"fcm-{uid}-token", "platform": "fcm"}],
        "email": f"{uid}@example.com",
    }


async def deliveries_for(p: Pipeline, uid: str, n: int, timeout_s: float = 30) -> list[dict]:
    records = await collect(
        p.bootstrap,
        [p.topic(t) for t in ALL_DELIVERY_TOPICS],
        until=lambda kept: len(kept) >= n,
        keep=lambda r: r.key == uid.encode(),
        timeout_s=timeout_s,
    )
    return values(records)


async def receipts_for(p: Pipeline, uid: str, n: int, timeout_s: float = 30) -> list[dict]:
    records = await collect(
        p.bootstrap,
        [p.topic(RECEIPTS)],
        until=lambda kept: len(kept) >= n,
        keep=lambda r: r.key == uid.encode(),
        timeout_s=timeout_s,
    )
    return values(records)


async def test_event_becomes_deliveries_with_receipts(pipeline: Pipeline, uid: str) -> None:
    await produce_json(pipeline.bootstrap, pipeline.topic(CONTACTS), contacts(uid), uid)
    await wait_for_changelog(pipeline, "contacts", uid)
    event = event_dict("payment", recipient_id=uid)
    await produce_json(pipeline.bootstrap, pipeline.topic("events.payments"), event, uid)

    found = await deliveries_for(pipeline, uid, 3)
    assert sorted((d["channel"], d["lane"], d["target"]["address"]) for d in found) == [
        ("email", "critical", f"{uid}@example.com"),
        ("in_app", "critical", uid),
        ("push", "critical", f"fcm-{uid}-token"),
    ]
    assert {d["title"] for d in found} == {"Payment succeeded"}
    receipts = await receipts_for(pipeline, uid, 3)
    assert sorted(r["delivery_id"] for r in receipts) == sorted(d["delivery_id"] for d in found)
    assert {r["status"] for r in receipts} <= {"sent", "delivered"}
    # The outbox sink wrote the non-in-app deliveries.
    lines = [json.loads(x) for x in pipeline.outbox.read_text().splitlines()]
    assert {d["channel"] for d in lines if d["recipient_id"] == uid} == {"push", "email"}


async def test_preference_update_applies_to_the_next_event(pipeline: Pipeline, uid: str) -> None:
    await produce_json(pipeline.bootstrap, pipeline.topic(CONTACTS), contacts(uid), uid)
    await wait_for_changelog(pipeline, "contacts", uid)
    social = pipeline.topic("events.social")
    await produce(pipeline.bootstrap, social, [event_bytes("like", recipient_id=uid)], uid.encode())
    first = await deliveries_for(pipeline, uid, 2)
    assert {d["channel"] for d in first} == {"in_app", "push"}

    prefs = {"user_id": uid, "disabled_channels": ["push"]}
    await produce_json(pipeline.bootstrap, pipeline.topic(PREFERENCES), prefs, uid)
    await wait_for_changelog(pipeline, "preferences", uid)
    await produce(pipeline.bootstrap, social, [event_bytes("like", recipient_id=uid)], uid.encode())

    found = await deliveries_for(pipeline, uid, 3)
    await asyncio.sleep(1.0)
    found = await deliveries_for(pipeline, uid, 4, timeout_s=2)
    assert sorted(d["channel"] for d in found) == ["in_app", "in_app", "push"]


async def test_bad_input_is_dead_lettered_and_the_worker_keeps_going(
    pipeline: Pipeline, uid: str
) -> None:
    missing_field = event_dict("comment", recipient_id=uid)
    del missing_field["text"]
    oversized = event_bytes("comment", recipient_id=uid, text="x" * 1900, padding="p" * 100_000)
    bad = [
        b'{"type": "like", "event_id": ',  # malformed JSON
        event_bytes("poke", recipient_id=uid),  # unknown type
        json.dumps(missing_field).encode(),  # missing field
        oversized,  # over CLARION_MAX_EVENT_BYTES (64 KiB)
    ]
    first = event_dict("like", recipient_id=uid)
    last = event_dict("follow", recipient_id=uid)
    topic = pipeline.topic("events.social")
    # One key, so one partition: the valid events sit on both sides of the bad ones.
    await produce(
        pipeline.bootstrap,
        topic,
        [json.dumps(first).encode(), *bad, json.dumps(last).encode()],
        key=uid.encode(),
    )

    dead = await collect(
        pipeline.bootstrap,
        [pipeline.topic(DLQ_EVENTS)],
        until=lambda kept: len(kept) >= 4,
        keep=lambda r: r.key == uid.encode(),
    )
    reasons = [dict(r.headers)["clarion.dlq.reason"].decode() for r in dead]
    assert reasons == ["malformed_json", "unknown_type", "schema_violation", "payload_too_large"]
    assert [r.value for r in dead] == bad  # the original bytes, untouched
    headers = dict(dead[2].headers)
    assert b"text" in headers["clarion.dlq.detail"]
    assert headers["clarion.dlq.source.topic"] == topic.encode()
    offsets = [int(dict(r.headers)["clarion.dlq.source.offset"]) for r in dead]
    assert offsets == sorted(offsets) and len(set(offsets)) == 4

    found = await deliveries_for(pipeline, uid, 2)
    assert sorted(d["category"] for d in found) == ["follow", "like"]


async def test_future_event_time_and_huge_numbers_are_dead_lettered_with_their_reason(
    pipeline: Pipeline, uid: str
) -> None:
    from_2999 = event_bytes("like", recipient_id=uid, occurred_at="2999-01-01T00:00:00Z")
    huge = event_bytes("like", recipient_id=uid).replace(
        b"{", b'{"unknown_extra": ' + b"9" * 5000 + b", ", 1
    )
    after = event_bytes("follow", recipient_id=uid)
    await produce(
        pipeline.bootstrap,
        pipeline.topic("events.social"),
        [from_2999, huge, after],
        key=uid.encode(),
    )
    dead = await collect(
        pipeline.bootstrap,
        [pipeline.topic(DLQ_EVENTS)],
        until=lambda kept: len(kept) >= 2,
        keep=lambda r: r.key == uid.encode(),
    )
    headers = [dict(r.headers) for r in dead]
    assert [h["clarion.dlq.reason"] for h in headers] == [
        b"occurred_at_in_future",
        b"number_too_large",
    ]
    assert b"2999-01-01T00:00:00+00:00" in headers[0]["clarion.dlq.detail"]
    assert b"4300 digits" in headers[1]["clarion.dlq.detail"]
    assert [r.value for r in dead] == [from_2999, huge]
    # The follow behind them went on (one in-app delivery: the user has no contact points).
    found = await deliveries_for(pipeline, uid, 1)
    assert [d["category"] for d in found] == ["follow"]


async def test_same_event_id_twice_is_delivered_once(pipeline: Pipeline, uid: str) -> None:
    raw = event_bytes("follow", recipient_id=uid)
    later = event_bytes("like", recipient_id=uid)
    await produce(
        pipeline.bootstrap, pipeline.topic("events.social"), [raw, raw, later], key=uid.encode()
    )
    found = await deliveries_for(pipeline, uid, 2)
    await asyncio.sleep(1.0)
    found = await deliveries_for(pipeline, uid, 3, timeout_s=2)
    assert sorted(d["category"] for d in found) == ["follow", "like"]


async def test_a_2_mb_record_is_dead_lettered_whole_and_ingest_keeps_going(
    pipeline: Pipeline, uid: str
) -> None:
    """A valid like padded to 2,000,000 bytes (the broker takes 2 MiB): its dead letter once
    exceeded the worker's 1,000,000-byte producer limit, ingest crashed and the record was
    lost. Now it reaches dlq.events byte for byte and the next event is processed."""
    like = event_dict("like", recipient_id=uid, padding="")
    pad = 2_000_000 - len(json.dumps(like).encode())
    big = json.dumps(like | {"padding": "p" * pad}).encode()
    assert len(big) == 2_000_000
    topic = pipeline.topic("events.social")
    # Raw bytes, as a foreign client sends them, with a producer that allows the size.
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, max_request_size=3_000_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, big, key=uid.encode())
        after = event_dict("follow", recipient_id=uid)
        await producer.send_and_wait(topic, json.dumps(after).encode(), key=uid.encode())
    finally:
        await producer.stop()

    dead = await collect(
        pipeline.bootstrap,
        [pipeline.topic(DLQ_EVENTS)],
        until=lambda kept: len(kept) >= 1,
        keep=lambda r: r.key == uid.encode(),
    )
    assert len(dead) == 1, "the 2 MB record did not reach dlq.events"
    assert dict(dead[0].headers)["clarion.dlq.reason"] == b"payload_too_large"
    assert "clarion.dlq.truncated" not in dict(dead[0].headers)
    assert dead[0].value == big  # byte for byte
    # The event after it went through: ingest was not stuck or crashed on the big one.
    found = await deliveries_for(pipeline, uid, 1)
    assert [d["category"] for d in found][:1] == ["follow"]
    assert "MessageSizeTooLarge" not in pipeline.worker.log_path.read_text(errors="replace")


async def test_a_dead_letter_the_dlq_topic_refuses_goes_as_a_truncated_copy(
    pipeline: Pipeline, uid: str
) -> None:
    """If the dead-letter topic takes less than the worker was told (an operator lowered its
    max.message.bytes), the broker's refusal is not a crash and not a loss: a truncated copy
    says how large the original was and its SHA-256, and the next event is processed."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    dlq = pipeline.topic(DLQ_EVENTS)
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.bootstrap)
    await admin.start()

    async def dlq_limit(value: str) -> None:
        config = {"max.message.bytes": value, "retention.ms": str(30 * 24 * 3600 * 1000)}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, dlq, configs=config)])

    like = event_dict("like", recipient_id=uid, padding="")
    big = json.dumps(like | {"padding": "q" * 1_500_000}).encode()
    try:
        await dlq_limit("300000")
        await asyncio.sleep(1)  # the broker applies topic config changes asynchronously
        topic = pipeline.topic("events.social")
        producer = AIOKafkaProducer(
            bootstrap_servers=pipeline.bootstrap, max_request_size=3_000_000
        )
        await producer.start()
        try:
            await producer.send_and_wait(topic, big, key=uid.encode())
            after = event_dict("follow", recipient_id=uid)
            await producer.send_and_wait(topic, json.dumps(after).encode(), key=uid.encode())
        finally:
            await producer.stop()
        dead = await collect(
            pipeline.bootstrap, [dlq], until=lambda kept: len(kept) >= 1,
            keep=lambda r: r.key == uid.encode(),
        )  # fmt: skip
        found = await deliveries_for(pipeline, uid, 1)
    finally:
        await dlq_limit(str(2_097_152 + 65_536))
        await admin.close()

    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["clarion.dlq.reason"] == b"payload_too_large"
    assert headers["clarion.dlq.truncated"] == b"true"
    assert headers["clarion.dlq.original.bytes"] == str(len(big)).encode()
    assert headers["clarion.dlq.original.sha256"] == hashlib.sha256(big).hexdigest().encode()
    assert dead[0].value and big.startswith(dead[0].value) and len(dead[0].value) < 300_000
    assert [d["category"] for d in found][:1] == ["follow"]
