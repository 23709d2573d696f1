"""digest, in-process: route.social (or route.high) gathers notifications into window rows,
and the tick agent flushes the windows that are due (agents/digest.py).

Time is driven explicitly. A window's time is the record's: records are put with
timestamps in a window that ended minutes ago, and a tick for the partition then decides
whether it is due. The cutoff is the wall clock when the lane partition is caught up (the
harness's log says how far it goes), else the newest record time seen (stream time).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from logic.partitioning import partition_of
from schemas.common import Channel, Lane
from schemas.digests import DigestWindow
from tables import keys
from tests.stages.conftest import PARTITIONS, Clock
from tests.stages.harness import StageDriver, StageHarness
from tests.stages.inputs import contacts, notification, preferences

UID = "alice"
P = partition_of(UID, PARTITIONS)
LIKE_WINDOW_S = 30  # the packaged rules' like window


def in_app(stage: StageHarness, lane: Lane = Lane.SOCIAL) -> list[dict[str, Any]]:
    topic = stage.ctx.topics.deliveries[(Channel.IN_APP, lane)]
    return [r.json() for r in stage.sent(topic, key=UID)]


def open_windows(stage: StageHarness) -> list[DigestWindow]:
    rows = stage.ctx.tables.digests.data.items()
    return [DigestWindow.model_validate(v) for k, v in rows if k.startswith(f"{UID}\x1f".encode())]


def past_window(size: float = LIKE_WINDOW_S, ago: int = 10) -> float:
    """The start of a window that ended `ago` windows before now."""
    return math.floor(time.time() / size) * size - ago * size


class Digest:
    """route.<lane> and digest.ticks running together."""

    def __init__(self, stage: StageHarness, route: StageDriver, ticks: StageDriver) -> None:
        self.stage, self.route, self.ticks = stage, route, ticks

    async def like(self, at: float, actor: str, **kw: Any) -> Any:
        n = notification(
            self.stage.ctx.rules,
            "like",
            recipient_id=UID,
            actor_id=actor,
            actor_name=actor,
            occurred_at=datetime.fromtimestamp(at, UTC).isoformat(),
            **kw,
        )
        await self.route.put(n, key=UID, timestamp=at)
        return n

    async def tick(self) -> None:
        """What each worker's timer sends to the ticks partitions it owns."""
        await self.ticks.put(time.time(), partition=P)


@asynccontextmanager
async def digest(stage: StageHarness, lane: Lane = Lane.SOCIAL) -> AsyncIterator[Digest]:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    async with stage.run(f"route.{lane.value}") as route, stage.run("digest.ticks") as ticks:
        yield Digest(stage, route, ticks)


async def test_one_window_gives_one_notification_with_the_full_count(stage: StageHarness) -> None:
    start = past_window()
    async with digest(stage) as d:
        for i in range(5):
            await d.like(start + 1 + i, f"a{i}")
        assert in_app(stage) == []  # gathered, waiting for its tick
        await d.tick()

    [found] = in_app(stage)
    assert found["count"] == 5
    assert found["body"] == "a0 and 4 others liked your photo"
    pushes = [r.json() for r in stage.sent(*stage.ctx.topics.deliveries.values(), key=UID)]
    assert sorted(p["channel"] for p in pushes) == ["in_app", "push"]
    assert len({p["notification_id"] for p in pushes}) == 1
    assert open_windows(stage) == []  # the row is gone once sent


async def test_due_windows_of_a_partition_go_out_together_with_one_progress_write(
    stage: StageHarness,
) -> None:
    """A tick sends every due window of the partition, waits for the broker once, then
    writes the progress row once and deletes the rows (not one progress write per window)."""
    start = past_window()
    photos = [f"p{i}" for i in range(4)]  # within the social limit of one user
    changelog = stage.ctx.tables.digests.changelog_topic.get_topic_name()
    progress_key = keys.digest_progress_key(P)
    async with digest(stage) as d:
        for photo in photos:
            for i in range(3):
                await d.like(start + 1 + i, f"{photo}-a{i}", object={"kind": "photo", "id": photo})
        before = len(stage.sent(changelog, key=progress_key))
        await d.tick()
        progress_writes = len(stage.sent(changelog, key=progress_key)) - before

    found = in_app(stage)
    assert sorted(f["count"] for f in found) == [3] * len(photos)
    assert len({f["notification_id"] for f in found}) == len(photos)
    assert progress_writes == 1
    assert open_windows(stage) == []


async def test_folding_keeps_one_deadline_entry_per_window(stage: StageHarness) -> None:
    """Each fold used to push a heap entry: a million likes, a million entries, each read
    back from the table at the flush. One per deadline now."""
    start = past_window()
    async with digest(stage) as d:
        for i in range(40):
            await d.like(start + 1 + i / 10, f"a{i}")
        assert len(stage.ctx.windows.heaps[(Lane.SOCIAL, P)]) == 1
        await d.tick()

    [found] = in_app(stage)
    assert found["count"] == 40


async def test_a_window_not_over_yet_is_not_flushed(stage: StageHarness) -> None:
    async with digest(stage) as d:
        await d.like(time.time(), "a0")
        await d.tick()
        assert in_app(stage) == []
        [window] = open_windows(stage)
        assert window.deadline > time.time()


async def test_behind_a_backlog_windows_wait_for_stream_time(stage: StageHarness) -> None:
    """A partition that is not caught up flushes by stream time, not the wall clock: the
    backlog may still hold likes of the window (a worker catching up after a crash)."""
    start = past_window()
    lane = stage.ctx.topics.lanes[Lane.SOCIAL]
    async with digest(stage) as d:
        stage.behind(lane, P, 100)
        for i in range(3):
            await d.like(start + 1 + i, f"a{i}")
        await d.tick()
        assert in_app(stage) == []  # the wall clock is past its end; stream time is not
        await d.like(start + 2, "a3")  # from the backlog: joins the same window
        await d.tick()
        assert in_app(stage) == []
        # A like of another photo moves stream time past the first window's end.
        await d.like(start + LIKE_WINDOW_S + 1, "b0", object={"kind": "photo", "id": "p2"})
        await d.tick()

    counts = [f["count"] for f in in_app(stage)]
    assert counts == [4]  # the first window, complete; the other photo's is still open
    [still_open] = open_windows(stage)
    assert (still_open.group_key, still_open.count) == ("like:photo:p2", 1)


async def test_two_windows_do_not_merge(stage: StageHarness) -> None:
    start = past_window()
    async with digest(stage) as d:
        for i in range(3):
            await d.like(start + 1 + i, f"a{i}")
        for i in range(2):
            await d.like(start + LIKE_WINDOW_S + 1 + i, f"b{i}")
        await d.tick()

    found = in_app(stage)
    assert [f["count"] for f in found] == [3, 2]
    assert [f["body"] for f in found] == [
        "a0 and 2 others liked your photo",
        "b0 and 1 other liked your photo",
    ]
    assert len({f["notification_id"] for f in found}) == 2


async def test_a_like_after_its_window_was_sent_starts_the_next_one(
    stage: StageHarness, clock: Clock
) -> None:
    start = past_window()
    async with digest(stage) as d:
        for i in range(5):
            await d.like(start + 1 + i, f"a{i}")
        await d.tick()
        # Stamped inside the window already sent: it joins the window open now, never a
        # second notification for the old one.
        await d.like(start + 10, "a5")
        await d.tick()
        assert [f["count"] for f in in_app(stage)] == [5]
        [window] = open_windows(stage)
        assert window.window_start > start
        clock.advance(2 * LIKE_WINDOW_S)
        await d.tick()

    found = in_app(stage)
    assert [f["count"] for f in found] == [5, 1]
    assert found[1]["body"] == "a5 liked your photo"
    assert len({f["notification_id"] for f in found}) == 2


async def test_a_replayed_notification_is_not_counted_twice(stage: StageHarness) -> None:
    """The same lane record again (route reprocessing after a crash, or ingest re-sending
    its tail): same ingress position, so the window already has it."""
    start = past_window()
    async with digest(stage) as d:
        first = await d.like(start + 1, "a0")
        second = await d.like(start + 2, "a1")
        await d.like(start + 3, "a2")
        await d.route.put(second, key=UID, timestamp=start + 2)
        await d.route.put(first, key=UID, timestamp=start + 1)
        await d.tick()

    [found] = in_app(stage)
    assert found["count"] == 3


async def test_quiet_hours_hold_then_deliver_aggregated_when_they_end(
    stage: StageHarness, clock: Clock
) -> None:
    zone = "America/New_York"
    local = datetime.now(ZoneInfo(zone))
    end = (local + timedelta(minutes=2)).replace(second=0, microsecond=0)
    quiet = f"{local - timedelta(hours=2):%H:%M}-{end:%H:%M}"
    stage.seed(
        stage.ctx.tables.preferences, UID, preferences(UID, quiet_hours=quiet, timezone=zone)
    )
    async with digest(stage, Lane.HIGH) as d:
        for i in range(3):
            m = notification(
                stage.ctx.rules, "message", recipient_id=UID, conversation_id="c1", preview=f"m{i}"
            )
            await d.route.put(m, key=UID)
        await d.tick()
        assert in_app(stage, Lane.HIGH) == []  # held during quiet hours

        clock.advance(end.timestamp() - time.time() + 1)  # past the end of quiet hours
        await d.tick()

    [found] = in_app(stage, Lane.HIGH)
    assert (found["count"], found["body"]) == (3, "3 new messages")
    channels = [r.json()["channel"] for r in stage.sent(*stage.ctx.topics.deliveries.values())]
    assert sorted(channels) == ["in_app", "push"]


async def test_social_over_the_limit_folds_into_the_next_digest(
    stage: StageHarness, clock: Clock
) -> None:
    """No push token when the window is due: it keeps gathering until there is one, and
    goes out then as one notification."""
    stage.seed(stage.ctx.tables.preferences, UID, preferences(UID, rate_limits={"push": 1}))
    other = {"object": {"kind": "photo", "id": "p2"}}
    async with digest(stage) as d:
        await d.like(past_window() + 1, "a0")
        await d.tick()
        assert [f["count"] for f in in_app(stage)] == [1]  # the one push token is spent
        for i in range(2):
            await d.like(time.time(), f"x{i}", **other)
        clock.advance(2 * LIKE_WINDOW_S)  # the second window is over
        await d.tick()
        assert len(in_app(stage)) == 1  # but not sent: no push token
        await d.like(time.time(), "x2", **other)  # and it keeps gathering

    [held] = open_windows(stage)
    assert (held.group_key, held.count) == ("like:photo:p2", 3)
    assert held.deadline > time.time() + 3000  # waits for the next token, about an hour


async def test_quiet_hours_that_began_after_the_window_opened_hold_it(
    stage: StageHarness,
) -> None:
    start = past_window()
    async with digest(stage) as d:
        for i in range(2):
            await d.like(start + 1 + i, f"a{i}")
        # The user turns quiet hours on before the window's tick.
        now = datetime.now(UTC)
        quiet = f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}"
        stage.seed(stage.ctx.tables.preferences, UID, preferences(UID, quiet_hours=quiet))
        await d.tick()

    assert in_app(stage) == []
    [held] = open_windows(stage)
    assert held.count == 2
    assert held.deadline > time.time() + 3000  # until quiet hours end, about an hour


async def test_opt_outs_apply_when_a_window_is_flushed(stage: StageHarness) -> None:
    stage.seed(stage.ctx.tables.preferences, UID, preferences(UID, opt_out={"like": ["push"]}))
    start = past_window(60)  # a window that ended for follows (60 s) and likes (30 s)
    async with digest(stage) as d:
        await d.like(start + 1, "a0")
        follow = notification(
            stage.ctx.rules,
            "follow",
            recipient_id=UID,
            occurred_at=datetime.fromtimestamp(start + 2, UTC).isoformat(),
        )
        await d.route.put(follow, key=UID, timestamp=start + 2)
        await d.tick()

    found = [r.json() for r in stage.sent(*stage.ctx.topics.deliveries.values(), key=UID)]
    assert sorted((f["category"], f["channel"]) for f in found) == [
        ("follow", "in_app"),
        ("follow", "push"),
        ("like", "in_app"),
    ]
