import asyncio
from datetime import UTC, datetime

import msgspec

from logic.dedupe import is_duplicate
from logic.inbox import append_item, contains, items_after, next_seq
from logic.masking import mask_address
from schemas.common import Category, Lane
from schemas.notifications import InboxItem
from sinks.hub import Hub
from tables.rows import SeenEvent


def _item(i: int) -> InboxItem:
    return InboxItem(
        id=f"d{i}",
        seq=i,
        notification_id=f"n{i}",
        category=Category.LIKE,
        lane=Lane.SOCIAL,
        title="t",
        body="b",
        created_at=datetime.now(UTC),
    )


def test_inbox_keeps_the_newest_items() -> None:
    items: list[InboxItem] = []
    for i in range(1, 8):
        items = append_item(items, _item(i), limit=5)
    assert [x.id for x in items] == ["d3", "d4", "d5", "d6", "d7"]
    assert next_seq(items) == 8
    assert contains(items, "d5") and not contains(items, "d1")


def test_resume_returns_what_came_after_the_last_seen_id() -> None:
    items = [_item(i) for i in range(1, 5)]
    assert [x.id for x in items_after(items, "d2")] == ["d3", "d4"]
    assert items_after(items, "d4") == []
    assert items_after(items, None) == []
    # Aged out of the inbox: give the client everything we still have.
    assert len(items_after(items, "d0")) == 4


def test_dedupe_tells_a_redelivery_from_a_duplicate() -> None:
    assert not is_duplicate(None, "ev:0", 10)
    # same message, reprocessed after a crash
    seen = SeenEvent(10, 1.0, "ev:0")
    assert not is_duplicate(seen, "ev:0", 10)
    assert is_duplicate(seen, "ev:0", 11)  # the same event id again
    # The same offset of another partition or topic is another message: a duplicate.
    assert is_duplicate(seen, "ev:1", 10)
    assert is_duplicate(seen, "other:0", 10)
    # Rows from before the source was recorded ([offset, time]) still dedupe by offset.
    old = msgspec.json.decode(b"[10, 1.0]", type=SeenEvent)
    assert not is_duplicate(old, "ev:0", 10)
    assert not is_duplicate(old, "ev:1", 10)
    assert is_duplicate(old, "ev:0", 11)


def test_masking_hides_contact_points() -> None:
    assert mask_address("alice@example.com") == "a***@example.com"
    assert "1234567" not in mask_address("+15551234567")
    assert mask_address("https://hooks.example.com/secret/path") == "https://hooks.example.com/***"
    assert "abcdefgh" not in mask_address("tok-abcdefghijklmnop")


async def test_hub_delivers_only_to_that_users_connections() -> None:
    hub = Hub()
    with hub.subscribe("alice") as a, hub.subscribe("bob") as b:
        assert hub.publish("alice", _item(1)) == 1
        assert (await asyncio.wait_for(a.queue.get(), 1)).id == "d1"
        assert b.queue.empty()
    assert hub.connections() == 0
    assert hub.publish("alice", _item(2)) == 0


async def test_slow_client_is_cut_off_not_buffered_forever() -> None:
    hub = Hub(queue_size=2)
    with hub.subscribe("alice") as sub:
        assert [hub.publish("alice", _item(i)) for i in range(1, 5)] == [1, 1, 0, 0]
        assert sub.overflowed
        drained = [sub.queue.get_nowait(), sub.queue.get_nowait()]
        assert drained[-1] is None  # end-of-stream marker: the client reconnects and resumes


def test_mark_sets_seen_and_read_only_on_named_notifications() -> None:
    from logic.inbox import mark

    items = [_item(i) for i in range(3)]
    seen = mark(items, {items[1].notification_id}, read=False)
    assert [(i.seen, i.read) for i in seen] == [(False, False), (True, False), (False, False)]
    read = mark(seen, {items[1].notification_id, items[2].notification_id}, read=True)
    assert [(i.seen, i.read) for i in read] == [(False, False), (True, True), (True, True)]
    # Seen never un-reads.
    assert mark(read, {items[2].notification_id}, read=False)[2].read
