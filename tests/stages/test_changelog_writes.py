"""tables/changelog.py: a hot-path table write puts the row in the event's partition of the
store and its record on the same partition of the changelog, in the order of the writes,
even when the producer makes one of them wait."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import pytest
from faust import streams as faust_streams

from tables import changelog
from tables.rows import SeenEvent
from tests.stages.harness import StageHarness


class _Message:
    def __init__(self, partition: int) -> None:
        self.partition = partition


class _Event:
    """What the write reads of Faust's current event: the partition being processed."""

    def __init__(self, partition: int) -> None:
        self.message = _Message(partition)


@pytest.fixture
def event_of_partition_2() -> Any:
    event = _Event(2)
    token = faust_streams._current_event.set(weakref.ref(event))
    yield event
    faust_streams._current_event.reset(token)


async def test_a_write_sets_the_row_at_once_and_its_record_at_the_next_flush(
    stage: StageHarness, event_of_partition_2: Any
) -> None:
    """The row is readable as soon as the write returns; its record is held until the
    producer is flushed (Faust flushes before every offset commit), then it is on the
    event's partition of the changelog."""
    table = stage.ctx.tables.seen_events
    topic = table.changelog_topic.get_topic_name()
    row = SeenEvent(7, 1.5, "events.likes:2")
    await changelog.put(table, b"e1", row)

    assert table.get(b"e1") == row
    assert stage.sent(topic) == []  # held
    await stage.producer.flush()
    [record] = stage.sent(topic)
    assert (record.partition, record.key, record.value) == (2, b"e1", b'[7,1.5,"events.likes:2"]')

    await changelog.delete(table, b"e1")
    assert table.get(b"e1") is None
    await stage.producer.flush()
    tombstone = stage.sent(topic)[-1]
    assert (tombstone.partition, tombstone.key, tombstone.value) == (2, b"e1", None)


async def test_held_records_go_out_after_the_hold_without_a_flush(
    stage: StageHarness, event_of_partition_2: Any
) -> None:
    table = stage.ctx.tables.seen_events
    topic = table.changelog_topic.get_topic_name()
    await changelog.put(table, b"e1", SeenEvent(1, 1.0))
    await asyncio.sleep(0)
    assert stage.sent(topic) == []
    await asyncio.sleep(changelog.HOLD_S + 0.05)
    assert [r.key for r in stage.sent(topic)] == [b"e1"]


async def test_a_key_written_again_before_the_flush_sends_only_its_last_value(
    stage: StageHarness, event_of_partition_2: Any
) -> None:
    """Write once per key per batch: a window folded a thousand times between two submits
    is one changelog record, the last value, after every other key held before it."""
    table = stage.ctx.tables.seen_events
    for offset in range(1000):
        await changelog.put(table, b"window", SeenEvent(offset, 1.0))
    await changelog.put(table, b"other", SeenEvent(5, 5.0))
    await changelog.put(table, b"window", SeenEvent(1000, 1.0))
    await stage.producer.flush()
    records = stage.sent(table.changelog_topic.get_topic_name())
    assert [(r.key, r.value) for r in records] == [
        (b"other", b"[5,5.0,null]"),
        (b"window", b"[1000,1.0,null]"),
    ]


async def test_writes_reach_the_changelog_in_the_order_they_were_made(
    stage: StageHarness, event_of_partition_2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submit's send waits (a full accumulator) while the key is written again: the
    second value's record must not get in first, or a restore would end on the older
    value."""
    table = stage.ctx.tables.seen_events
    gate = asyncio.Event()
    real_send = stage.producer.send
    calls = 0

    async def send(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await gate.wait()
        return await real_send(*args, **kwargs)

    monkeypatch.setattr(stage.producer, "send", send)
    await changelog.put(table, b"k", SeenEvent(1, 1.0))
    first = asyncio.create_task(stage.producer.flush())
    await asyncio.sleep(0.01)  # the first submit waits in its send
    await changelog.put(table, b"k", SeenEvent(2, 2.0))
    second = asyncio.create_task(stage.producer.flush())
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(first, second)

    values = [r.value for r in stage.sent(table.changelog_topic.get_topic_name(), key=b"k")]
    assert values == [b"[1,1.0,null]", b"[2,2.0,null]"]
    assert table.get(b"k") == SeenEvent(2, 2.0)  # the store agrees with the last record


async def test_a_flush_returns_only_once_every_held_record_is_with_the_producer(
    stage: StageHarness, event_of_partition_2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps a commit from passing held records: Faust awaits the flush, then
    commits; the flush must not return while a submit still waits to hand records over."""
    table = stage.ctx.tables.seen_events
    gate = asyncio.Event()
    real_send = stage.producer.send

    async def send(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await real_send(*args, **kwargs)

    monkeypatch.setattr(stage.producer, "send", send)
    await changelog.put(table, b"k", SeenEvent(1, 1.0))
    await asyncio.sleep(changelog.HOLD_S + 0.05)  # the held submit starts, waits in its send
    flush = asyncio.create_task(stage.producer.flush())
    await asyncio.sleep(0.01)
    assert not flush.done()
    gate.set()
    await flush
    assert [r.key for r in stage.sent(table.changelog_topic.get_topic_name())] == [b"k"]


async def test_a_write_outside_a_record_is_refused(stage: StageHarness) -> None:
    with pytest.raises(RuntimeError, match="while processing a record"):
        await changelog.put(stage.ctx.tables.seen_events, b"k", SeenEvent(1, 1.0))


async def test_the_store_remembers_the_offset_the_broker_gave_the_record(
    stage: StageHarness, event_of_partition_2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Faust's own writes do: a recovery on this disk then starts there, not at the
    changelog's beginning."""
    table = stage.ctx.tables.seen_events
    persisted: list[tuple[int, int]] = []

    def remember(tp: Any, offset: int) -> None:
        persisted.append((tp.partition, offset))

    monkeypatch.setattr(table.data, "set_persisted_offset", remember)
    await changelog.put(table, b"a", SeenEvent(1, 1.0))
    await changelog.put(table, b"b", SeenEvent(2, 2.0))
    await stage.producer.flush()
    await asyncio.sleep(0)  # the send futures' callbacks
    assert persisted == [(2, 0), (2, 1)]


async def test_an_update_reads_under_the_lock_so_no_concurrent_change_is_lost(
    stage: StageHarness, event_of_partition_2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two read-modify-writes of one row while a send waits: the second reads what the
    first wrote (an append to a list, as the inbox does), not the row before it."""
    table = stage.ctx.tables.seen_events
    await changelog.put(table, b"k", SeenEvent(1, 1.0))
    await stage.producer.flush()
    gate = asyncio.Event()
    real_send = stage.producer.send

    async def send(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await real_send(*args, **kwargs)

    def plus_one(row: SeenEvent | None) -> SeenEvent:
        assert row is not None
        return SeenEvent(row.offset + 1, row.first_seen_at)

    monkeypatch.setattr(stage.producer, "send", send)
    first = asyncio.create_task(changelog.update(table, b"k", plus_one))
    await asyncio.sleep(0)
    second = asyncio.create_task(changelog.update(table, b"k", plus_one))
    await asyncio.sleep(0.01)
    gate.set()
    assert [await first, await second] == [
        (SeenEvent(1, 1.0), SeenEvent(2, 1.0)),
        (SeenEvent(2, 1.0), SeenEvent(3, 1.0)),
    ]
    await stage.producer.flush()
    values = [r.value for r in stage.sent(table.changelog_topic.get_topic_name(), key=b"k")]
    assert values[-1] == b"[3,1.0,null]"


async def test_an_update_that_keeps_the_row_writes_nothing(
    stage: StageHarness, event_of_partition_2: Any
) -> None:
    table = stage.ctx.tables.seen_events
    await changelog.put(table, b"k", SeenEvent(1, 1.0))
    await stage.producer.flush()
    old, new = await changelog.update(table, b"k", lambda row: row)
    assert old is new
    await stage.producer.flush()
    assert len(stage.sent(table.changelog_topic.get_topic_name(), key=b"k")) == 1
