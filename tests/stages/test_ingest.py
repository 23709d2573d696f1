"""ingest as its topic loader runs it (`agents/ingest.applier`), in-process: each record of
a fetched batch is validated, deduped and routed in place on its partition; a copy of an
event already seen is dropped; a record read again after a crash (same source and offset)
is processed again with the same ids; a record off its recipient's partition is re-keyed.
(The loaders reading a real broker: the integration suite.)"""

from __future__ import annotations

import json
from types import SimpleNamespace

from aiokafka import ConsumerRecord

from agents import ingest
from logic.partitioning import partition_of
from logic.rekey import rekey_source
from streams.topic_loader import loaders_of
from tables import keys
from tests.factories import event_bytes
from tests.stages.conftest import PARTITIONS
from tests.stages.harness import StageHarness
from tests.stages.inputs import consumer_record, contacts

UID = "alice"


def payments_record(
    stage: StageHarness,
    offset: int,
    value: bytes,
    partition: int | None = None,
    ingress: str = "events.payments",
) -> ConsumerRecord[bytes, bytes]:
    topic = stage.ctx.topics.ingress[ingress].get_topic_name()
    if partition is None:
        partition = partition_of(UID, stage.app.settings.partitions)
    return consumer_record(topic, offset, UID.encode(), value, partition=partition)


def delivery_ids(stage: StageHarness) -> list[str]:
    topics = stage.ctx.topics.deliveries.values()
    return [r.json()["delivery_id"] for r in stage.sent(*topics, key=UID)]


async def apply(stage: StageHarness, records: list[ConsumerRecord[bytes, bytes]]) -> None:
    assert await ingest.applier(stage.ctx)(records[0].partition, records) == []
    await stage.app.producer.flush()


async def test_a_batch_is_routed_in_place_and_a_copy_of_an_event_is_dropped(
    stage: StageHarness,
) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    payment = event_bytes("payment", recipient_id=UID)
    other = event_bytes("payment", recipient_id=UID)
    # The producer retried the first payment: the same event at a later offset.
    await apply(stage, [payments_record(stage, 0, payment), payments_record(stage, 1, other),
                        payments_record(stage, 2, payment)])  # fmt: skip
    ids = delivery_ids(stage)
    assert ids and len(ids) == len(set(ids))
    seen = stage.ctx.tables.seen_events
    first = seen[keys.seen_key(json.loads(payment)["event_id"])]
    assert first.offset == 0  # the copy at offset 2 did not replace it
    per_event = len(ids) // 2
    assert len(ids) == 2 * per_event  # two events, the same channels each

    # Read again after a crash (the loader resumes at its last commit): the same record is
    # the same event at the same position, processed again with the same delivery ids.
    stage.clear()
    await apply(stage, [payments_record(stage, 0, payment)])
    again = delivery_ids(stage)
    assert len(again) == per_event and set(again) <= set(ids)


async def test_a_record_off_its_recipients_partition_is_rekeyed(stage: StageHarness) -> None:
    owner = partition_of(UID, stage.app.settings.partitions)
    elsewhere = (owner + 1) % stage.app.settings.partitions
    value = event_bytes("payment", recipient_id=UID)
    await apply(stage, [payments_record(stage, 7, value, partition=elsewhere)])
    assert delivery_ids(stage) == []
    [copy] = stage.sent(stage.ctx.topics.events_rekeyed)
    assert (copy.partition, copy.key, copy.value) == (owner, UID.encode(), value)
    source = rekey_source(list(copy.headers.items()))
    assert source is not None
    assert (source.partition, source.offset) == (elsewhere, 7)
    assert source.topic == stage.ctx.topics.ingress["events.payments"].get_topic_name()


async def test_every_lane_is_routed_in_place_without_a_dead_letter(stage: StageHarness) -> None:
    # Route reads the partition's backlog for the bulk lane (shedding) from the loader that
    # read the record, not from Faust's consumer, which does not read the ingress topics.
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    records = [
        payments_record(stage, 0, event_bytes(kind, recipient_id=UID), ingress=topic)
        for kind, topic in [
            ("payment", "events.payments"),
            ("message", "events.messaging"),
            ("like", "events.social"),
            ("marketing", "events.marketing"),
        ]
    ]
    for record in records:
        await apply(stage, [record])
    assert stage.sent(stage.ctx.topics.dlq_events) == []
    assert len(stage.ctx.tables.seen_events) == len(records)
    # The payment and the message are delivered now; the like and the campaign wait in windows.
    assert (
        len(
            {r.json()["notification_id"] for r in stage.sent(*stage.ctx.topics.deliveries.values())}
        )
        == 2
    )
    digests = stage.ctx.tables.digests.data
    assert sum(1 for k in digests if k.startswith(f"{UID}\x1f".encode())) == 2


async def test_bulk_is_shed_when_its_ingress_partition_is_far_behind(stage: StageHarness) -> None:
    topic = stage.ctx.topics.ingress["events.marketing"].get_topic_name()
    [loader] = [lo for lo in loaders_of(stage.app) if topic in lo.topics]
    partition, shed_lag = partition_of(UID, PARTITIONS), stage.ctx.settings.bulk_shed_lag
    # The loader has fetched up to offset 10 + shed_lag (no broker here: its consumer's
    # highwater stands in).
    loader._consumer = SimpleNamespace(highwater=lambda tp: 11 + shed_lag)  # type: ignore[assignment]
    loader._reading = (0, frozenset({partition}))
    value = event_bytes("marketing", recipient_id=UID)
    await apply(stage, [payments_record(stage, 9, value, ingress="events.marketing")])
    [receipt] = [r.json() for r in stage.sent(stage.ctx.topics.receipts, key=UID)]
    assert (receipt["status"], receipt["reason"]) == ("throttled", "shed_under_pressure")
