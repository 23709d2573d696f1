"""streams/record_batches.py, OutgoingRecords and send_soon: deliveries and receipts sent
while the stages run in one turn of the event loop go to the producer together when the
turn is over, every record kept and in order, each on its key's partition; the producer's
flush (before every commit) sends what is still held."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from logic.partitioning import partition_of
from schemas.common import Category, Channel, Lane
from schemas.notifications import Delivery, Target
from streams import record_batches
from streams.in_place import IN_PLACE_HEADERS
from tests.stages.harness import StageHarness


async def test_records_of_one_turn_go_out_together_in_order_once_the_turn_is_over(
    stage: StageHarness,
) -> None:
    sending = record_batches.outgoing(stage.producer)
    first = sending.add("t", 1, b"a", b"1")
    sending.add("t", 0, b"b", b"2", [("h", b"x")])
    second = sending.add("t", 1, b"c", b"3")
    assert first is second  # one future per partition and turn
    assert stage.sent("t") == []  # nothing before the turn is over

    await asyncio.wait_for(first, 1)
    records = [(r.partition, r.key, r.value, r.headers) for r in stage.sent("t")]
    assert records == [(1, b"a", b"1", {}), (1, b"c", b"3", {}), (0, b"b", b"2", {"h": b"x"})]


async def test_the_flush_sends_what_is_held_without_waiting_for_the_turn(
    stage: StageHarness,
) -> None:
    done = record_batches.outgoing(stage.producer).add("t", 3, b"k", b"v")
    await stage.producer.flush()  # no other await in between: the turn is not over
    assert [(r.partition, r.key) for r in stage.sent("t")] == [(3, b"k")]
    await asyncio.wait_for(done, 1)


async def test_a_failed_send_fails_the_future_of_its_records(stage: StageHarness) -> None:
    async def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("broker said no")

    sending = record_batches.OutgoingRecords(stage.producer)
    stage.producer.send = refuse  # type: ignore[method-assign]
    done = sending.add("t", 0, b"k", b"v")
    with pytest.raises(record_batches.SubmitFailed):
        await sending.submit()
    assert isinstance(done.exception(), RuntimeError)


async def test_send_soon_encodes_with_the_topic_codec_on_the_key_partition(
    stage: StageHarness,
) -> None:
    topic = stage.ctx.topics.deliveries[(Channel.PUSH, Lane.SOCIAL)]
    now = datetime(2026, 12, 1, tzinfo=UTC)
    d = Delivery(
        delivery_id="d1", notification_id="n1", recipient_id="u-42", category=Category.LIKE,
        lane=Lane.SOCIAL, channel=Channel.PUSH, target=Target(address="tok", platform="fcm"),
        title="t", body="b", occurred_at=now, created_at=now,
    )  # fmt: skip
    await asyncio.wait_for(record_batches.send_soon(topic, b"u-42", d, IN_PLACE_HEADERS), 1)
    [record] = stage.sent(topic)
    assert record.partition == partition_of("u-42", stage.partitions)
    assert record.key == b"u-42"
    assert Delivery.model_validate_json(record.value) == d
    assert record.headers == dict(IN_PLACE_HEADERS)


async def test_after_records_are_lost_to_a_failed_submit_every_flush_fails(
    stage: StageHarness,
) -> None:
    """The records a failed submit took are gone from the buffer: the producer's flush,
    which Faust awaits before every commit, must fail from then on so that no commit
    passes the events that wrote them (the worker stops and reads them again)."""

    async def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("broker said no")

    sending = record_batches.outgoing(stage.producer)
    pending = record_batches.pending(stage.producer, 0.1)
    send = stage.producer.send
    stage.producer.send = refuse  # type: ignore[method-assign]
    sending.add("t", 0, b"k", b"v")
    pending.add("c", 0, b"k", b"v", lambda offset: None)
    with pytest.raises(record_batches.SubmitFailed):
        await stage.producer.flush()
    stage.producer.send = send  # type: ignore[method-assign]
    with pytest.raises(record_batches.SubmitFailed):
        await stage.producer.flush()
