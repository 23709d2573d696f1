"""Dead letters of records that are not deliveries, in-process: ingest's rejects, a stage
error caught by the guard and a bad `follows` record all go to dlq.events through
streams/deadletter.record, with the header set of logic/deadletter.dlq_headers, and count
in clarion_events_dead_lettered_total. (Dead-lettered deliveries: test_deliver.py,
test_feedback.py.)"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from agents import graph, ingest
from logic import deadletter
from logic.partitioning import partition_of
from streams import metrics
from tests.factories import event_bytes
from tests.stages.conftest import harness
from tests.stages.harness import Record, StageHarness
from tests.stages.inputs import EVENT_DLQ_HEADERS, consumer_record, follows_record


def counted(reason: str) -> float:
    name = "clarion_events_dead_lettered_total"
    return metrics.registry.get_sample_value(name, {"reason": reason}) or 0.0


def social_record(stage: StageHarness, value: bytes, key: str = "bob") -> object:
    """A record on events.social, on the key's partition, as ingest's loader reads it."""
    topic = stage.ctx.topics.ingress["events.social"].get_topic_name()
    partition = partition_of(key, stage.app.settings.partitions)
    return consumer_record(topic, 0, key.encode(), value, partition=partition)


def check_source(dead: Record, event: object) -> None:
    m = event.message  # type: ignore[attr-defined]
    assert (dead.key, dead.value) == (m.key, m.value)  # untouched
    assert (
        dead.header(deadletter.SOURCE_TOPIC),
        int(dead.header(deadletter.SOURCE_PARTITION)),
        int(dead.header(deadletter.SOURCE_OFFSET)),
    ) == (m.topic, m.partition, m.offset)


async def test_an_ingress_reject_is_dead_lettered_and_counted(stage: StageHarness) -> None:
    before = counted("malformed_json")
    record = social_record(stage, b"{not json")
    assert await ingest.applier(stage.ctx)(record.partition, [record]) == []  # type: ignore[attr-defined]
    event = SimpleNamespace(message=record)
    [dead] = stage.sent(stage.ctx.topics.dlq_events)
    assert set(dead.headers) == EVENT_DLQ_HEADERS
    assert dead.header(deadletter.REASON) == "malformed_json"
    check_source(dead, event)
    assert counted("malformed_json") == before + 1


async def test_a_stage_error_is_dead_lettered_with_its_stage(tmp_path: Path) -> None:
    stage = harness(tmp_path, fault_injection="ingest=bob")
    before = counted("stage_error")
    record = social_record(stage, event_bytes("like"))
    assert await ingest.applier(stage.ctx)(record.partition, [record]) == []  # type: ignore[attr-defined]
    event = SimpleNamespace(message=record)
    [dead] = stage.sent(stage.ctx.topics.dlq_events)
    assert set(dead.headers) == EVENT_DLQ_HEADERS | {deadletter.STAGE}
    assert dead.header(deadletter.REASON) == "stage_error"
    assert dead.header(deadletter.STAGE) == "ingest"
    assert dead.header(deadletter.DETAIL) == "InjectedFault: injected fault in ingest"
    check_source(dead, event)
    assert counted("stage_error") == before + 1


async def test_a_bad_follows_record_is_dead_lettered_and_counted(stage: StageHarness) -> None:
    before = counted("bad_key")
    edge = b'{"actor_id": "carol", "follower_id": "bob"}'
    record = follows_record(7, b"carol/someone-else", edge)
    apply = graph.applier(stage.app, stage.ctx)
    for dead_letter in apply(0, [record]):
        await dead_letter
    [dead] = stage.sent(stage.ctx.topics.dlq_events)
    assert set(dead.headers) == EVENT_DLQ_HEADERS
    assert dead.header(deadletter.REASON) == "bad_key"
    check_source(dead, SimpleNamespace(message=record))
    assert counted("bad_key") == before + 1
