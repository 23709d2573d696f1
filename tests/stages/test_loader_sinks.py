"""The in-app sink and the outbox read their delivery topics through topic loaders
(streams/topic_loader.py): their `apply` step, in-process. Each record of a batch is
delivered in order as the current event of its partition; a redelivered record stores
nothing twice; a record that does not decode, or whose delivery raises, is dead-lettered
on dlq.deliveries with its bytes and the rest of the batch goes on. (The loaders reading a
real broker: the integration suite, e.g. test_pipeline.py and test_sse.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from logic import deadletter
from logic.topic_names import outbox_sink_group
from schemas.common import Channel, Lane
from sinks import inapp
from streams.topic_loader import loaders_of
from tables import keys
from tests.factories import delivery_bytes
from tests.stages.conftest import harness
from tests.stages.harness import StageHarness
from tests.stages.inputs import consumer_record

UID = "ann"


def in_app_record(offset: int, value: bytes, stage: StageHarness) -> Any:
    topic = stage.ctx.topics.deliveries[(Channel.IN_APP, Lane.HIGH)].get_topic_name()
    return consumer_record(topic, offset, UID.encode(), value)


def receipts(stage: StageHarness) -> list[dict[str, Any]]:
    return [r.json() for r in stage.sent(stage.ctx.topics.receipts)]


async def test_in_app_records_go_to_the_inbox_once_each(stage: StageHarness) -> None:
    apply = inapp.applier(stage.ctx, Lane.HIGH)
    first = delivery_bytes("in_app", UID, UID)
    second = delivery_bytes("in_app", UID, UID)
    batch = [in_app_record(0, first, stage), in_app_record(1, second, stage)]
    for sent in await apply(0, batch):
        await sent
    inbox = stage.ctx.tables.inbox[keys.user_key(UID)]
    assert [i.id for i in inbox] == [json.loads(v)["delivery_id"] for v in (first, second)]
    assert [r["status"] for r in receipts(stage)] == ["sent", "sent"]  # no live client

    # Read again after a crash (the loader resumes at its last commit): no second item.
    for sent in await apply(0, [in_app_record(1, second, stage)]):
        await sent
    assert len(stage.ctx.tables.inbox[keys.user_key(UID)]) == 2
    assert len(receipts(stage)) == 3  # the receipt is sent again, as for an agent's redelivery


async def test_a_bad_record_is_dead_lettered_and_the_batch_goes_on(tmp_path: Path) -> None:
    stage = harness(tmp_path, fault_injection=f"sink.in_app.high={UID}")
    apply = inapp.applier(stage.ctx, Lane.HIGH)
    batch = [
        in_app_record(0, b"{not json", stage),
        in_app_record(1, delivery_bytes("in_app", UID, UID), stage),  # the injected fault
    ]
    assert await apply(0, batch) == []
    dead = stage.sent(stage.ctx.topics.dlq_deliveries)
    assert [d.header(deadletter.REASON) for d in dead] == ["undecodable_record", "stage_error"]
    assert [d.value for d in dead] == [r.value for r in batch]  # the original bytes
    assert dead[1].header(deadletter.STAGE) == "sink.in_app.high"
    assert keys.user_key(UID) not in stage.ctx.tables.inbox


async def test_the_outbox_writes_a_line_and_a_receipt_per_delivery(stage: StageHarness) -> None:
    [loader] = [
        lo
        for lo in loaders_of(stage.app)
        if lo.group_id == outbox_sink_group(stage.app.settings.app_id, Lane.HIGH)
    ]
    topic = stage.ctx.topics.deliveries[(Channel.EMAIL, Lane.HIGH)].get_topic_name()
    assert topic in loader.topics
    value = delivery_bytes("email", UID, "ann@example.com")
    for sent in await loader.apply(0, [consumer_record(topic, 0, UID.encode(), value)]):
        await sent
    [line] = stage.app.settings.outbox_path.read_text().splitlines()
    assert json.loads(line)["delivery_id"] == json.loads(value)["delivery_id"]
    assert [r["status"] for r in receipts(stage)] == ["sent"]
