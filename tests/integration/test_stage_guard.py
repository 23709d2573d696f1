"""No stage crashes on a record: records that make a stage's code raise, or that do not decode,
are dead-lettered with the reason and their original bytes, and every stage keeps going."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from schemas.common import Channel, Lane
from streams.catalog import (
    CONTACTS,
    DLQ_DELIVERIES,
    DLQ_EVENTS,
    PREFERENCES,
    delivery_topic,
    lane_topic,
)
from tests.factories import event_dict
from tests.integration.conftest import Pipeline, start_pipeline, wait_for_changelog
from tests.integration.kafka_io import collect, produce, produce_json, values

pytestmark = pytest.mark.integration

# Drill hooks (CLARION_FAULT_INJECTION): these stages raise on records with these keys.
INGEST_FAULT, ROUTE_FAULT = "fault-in-ingest", "fault-in-route"


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    p = start_pipeline(
        kafka_bootstrap,
        tmp_path_factory.mktemp("guard"),
        CLARION_FAULT_INJECTION=f"ingest={INGEST_FAULT},route.critical={ROUTE_FAULT}",
    )
    try:
        yield p
    finally:
        p.worker.stop()


async def dead_letters(p: Pipeline, topic: str, values_: list[bytes]) -> dict[bytes, dict]:
    records = await collect(
        p.bootstrap,
        [p.topic(topic)],
        until=lambda kept: len(kept) >= len(values_),
        keep=lambda r: r.value in values_,
        timeout_s=30,
    )
    return {r.value: {k: v.decode() for k, v in r.headers} for r in records}


async def test_records_that_make_stages_raise_are_dead_lettered_and_stages_go_on(
    pipeline: Pipeline, uid: str
) -> None:
    # ingest raises on this record; route raises on the other one's lane record.
    bad_event = json.dumps(event_dict("payment", recipient_id=uid)).encode()
    await produce(
        pipeline.bootstrap, pipeline.topic("events.payments"), [bad_event], INGEST_FAULT.encode()
    )
    # ingest routes a payment in place, so the route's dead letter is this event's own bytes.
    bad_note = json.dumps(event_dict("payment", recipient_id=ROUTE_FAULT)).encode()
    await produce(
        pipeline.bootstrap, pipeline.topic("events.payments"), [bad_note], ROUTE_FAULT.encode()
    )
    # decode: bytes that are not a notification / delivery / tick at all.
    garbage = {
        lane_topic(Lane.SOCIAL): f"not a notification {uid}".encode(),
        delivery_topic(Channel.PUSH, Lane.HIGH): f"not a delivery {uid}".encode(),
        delivery_topic(Channel.IN_APP, Lane.CRITICAL): f"\xff\xfe {uid}".encode("latin-1"),
    }
    for topic, value in garbage.items():
        await produce(pipeline.bootstrap, pipeline.topic(topic), [value], uid.encode())
    # profiles: contact points that fail validation.
    bad_contacts = json.dumps({"user_id": uid, "email": "not-an-email"}).encode()
    await produce(pipeline.bootstrap, pipeline.topic(CONTACTS), [bad_contacts], uid.encode())
    bad_prefs = json.dumps({"user_id": f"{uid}-someone-else"}).encode()
    await produce(pipeline.bootstrap, pipeline.topic(PREFERENCES), [bad_prefs], uid.encode())

    event_dlq = [
        bad_event,
        bad_note,
        garbage[lane_topic(Lane.SOCIAL)],
        bad_contacts,
        bad_prefs,
    ]
    found = await dead_letters(pipeline, DLQ_EVENTS, event_dlq)
    assert set(found) == set(event_dlq), "a bad record is missing from dlq.events"
    assert found[bad_event]["clarion.dlq.stage"] == "ingest"
    assert found[bad_event]["clarion.dlq.reason"] == "stage_error"
    assert "InjectedFault" in found[bad_event]["clarion.dlq.detail"]
    assert found[bad_note]["clarion.dlq.reason"] == "stage_error"
    assert found[bad_note]["clarion.dlq.stage"] == "route.critical"
    assert found[bad_note]["clarion.dlq.source.topic"] == pipeline.topic("events.payments")
    assert found[garbage[lane_topic(Lane.SOCIAL)]]["clarion.dlq.reason"] == "undecodable_record"
    assert found[bad_contacts]["clarion.dlq.reason"] == "invalid_profile"
    assert "not-an-email" not in found[bad_contacts]["clarion.dlq.detail"]  # masked
    assert found[bad_prefs]["clarion.dlq.reason"] == "invalid_profile"

    delivery_dlq = [garbage[delivery_topic(Channel.PUSH, Lane.HIGH)]]
    delivery_dlq.append(garbage[delivery_topic(Channel.IN_APP, Lane.CRITICAL)])
    found = await dead_letters(pipeline, DLQ_DELIVERIES, delivery_dlq)
    assert {h["clarion.dlq.reason"] for h in found.values()} == {"undecodable_record"}
    assert set(found) == set(delivery_dlq)

    # Every stage is still processing: a payment goes all the way to in-app, push and email.
    contact = {"user_id": uid, "devices": [{"token": f"fcm-{uid}", "platform": "fcm"}]}
    contact["email"] = f"{uid}@example.com"
    await produce_json(pipeline.bootstrap, pipeline.topic(CONTACTS), contact, uid)
    await wait_for_changelog(pipeline, "contacts", uid)
    payment = event_dict("payment", recipient_id=uid)
    await produce_json(pipeline.bootstrap, pipeline.topic("events.payments"), payment, uid)
    records = await collect(
        pipeline.bootstrap,
        [pipeline.topic(delivery_topic(ch, Lane.CRITICAL)) for ch in Channel],
        until=lambda kept: len(kept) >= 3,
        keep=lambda r: r.key == uid.encode() and r.value not in garbage.values(),
        timeout_s=30,
    )
    assert sorted(d["channel"] for d in values(records)) == ["email", "in_app", "push"]
