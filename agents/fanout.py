"""fanout: a broadcast ("creator went live") becomes one notification per follower on the
bulk lane, paced, checkpointed page by page.

    broadcasts ──► [plan] one task per partition ──► fanout.tasks[p]
    fanout.tasks[p] ──► [page] read the next page of the actor's followers stored on p,
                        send their notifications, checkpoint, send the next task to p

The follow graph is spread over every partition (tables.state.followers), so each
partition pages its own share and the fan-out runs on every worker at once. Each page is
one short event: nothing is held for the length of a 50-million-follower broadcast, and a
restart resumes at the checkpoint (a page sent twice yields the same notification ids,
which the delivery ledger and the inbox skip).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import faust
from faust.types import TP

from logic.fanout import (
    advance,
    encoded_for_followers,
    next_task,
    pause_after_page,
    resume_task,
    should_run,
    stalled,
)
from logic.partitioning import partition_of
from schemas.common import Category
from schemas.events import LiveStartedEvent
from schemas.graph import FanoutTask
from streams import record_batches
from tables.keys import audience_prefix, fanout_key, follower_of
from tables.scan import keys_with_prefix

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext

log = logging.getLogger("clarion.fanout")


def install(app: ClarionApp, ctx: StageContext) -> None:
    _settings, topics, rules, positions = ctx.settings, ctx.topics, ctx.rules, ctx.positions
    fanout, followers = ctx.tables.fanout, ctx.tables.followers
    parts = _settings.partitions
    # Every follower notification has the live_started rule's lane.
    lane_topic = topics.lanes[rules.for_category(Category.LIVE_STARTED).lane].get_topic_name()

    async def plan(stream: faust.StreamT[LiveStartedEvent]) -> None:
        async for broadcast in stream:
            for partition in range(_settings.partitions):
                await topics.fanout_tasks.send(
                    key=broadcast.event_id.encode(),
                    value=FanoutTask(broadcast=broadcast, partition=partition),
                    partition=partition,
                )
            log.info("broadcast %s of %s: fan-out started", broadcast.event_id, broadcast.actor_id)

    async def page(stream: faust.StreamT[FanoutTask]) -> None:
        async for event in stream.events():
            task: FanoutTask = event.value
            partition = event.message.partition
            key = fanout_key(task.broadcast.event_id, partition)
            progress = fanout.get(key)
            if not should_run(task, progress):
                continue
            started = time.monotonic()
            followers_page = keys_with_prefix(
                followers,
                partition,
                audience_prefix(task.broadcast.audience.of),
                task.after.encode() if task.after else None,
                _settings.fanout_page_size,
            )
            now = time.time()
            created = datetime.fromtimestamp(now, UTC)
            # The page's notifications go out as whole record batches, one per lane
            # partition (streams/record_batches.py): per follower, a msgspec encoding of
            # the page's one model and a batch append, not a pydantic model and a Faust send.
            encoded = encoded_for_followers(
                task.broadcast, map(follower_of, followers_page), rules, created
            )
            await record_batches.send_records(
                app.producer,
                lane_topic,
                ((partition_of(f, parts), f.encode(), value) for f, value in encoded),
            )
            done = advance(task, progress, followers_page, _settings.fanout_page_size, now)
            fanout[key] = done
            following = next_task(task, done)
            if following is None:
                log.info(
                    "broadcast %s: partition %d done, %d followers notified",
                    task.broadcast.event_id,
                    partition,
                    done.sent,
                )
            else:
                await topics.fanout_tasks.send(
                    key=event.message.key, value=following, partition=partition
                )
            # Pacing: the whole worker's fan-out (all partitions share this agent) keeps to
            # CLARION_FANOUT_PER_S, so the bulk lane and the push provider see a steady rate.
            pause = pause_after_page(
                len(followers_page), _settings.fanout_per_s, time.monotonic() - started
            )
            if pause:
                await asyncio.sleep(pause)

    async def resume_stalled() -> None:
        """Restart, from its checkpoint, any fan-out of an owned partition that stopped moving."""
        now = time.time()
        topic = topics.fanout_tasks.get_topic_name()
        for _key, progress in list(fanout.items()):
            if not stalled(progress, now, _settings.fanout_stall_s):
                continue
            if not positions.owned(TP(topic, progress.partition)):
                continue
            log.warning(
                "broadcast %s: partition %d stalled after %d pages; resuming",
                progress.broadcast.event_id,
                progress.partition,
                progress.pages_done,
            )
            # A duplicate of a task that was only slow is skipped by should_run().
            await topics.fanout_tasks.send(
                key=progress.broadcast.event_id.encode(),
                value=resume_task(progress),
                partition=progress.partition,
            )

    # By default the fan-out runs where the bulk lane is served (its notifications are bulk);
    # CLARION_FANOUT deploys it on its own.
    if _settings.runs_fanout:
        app.agent(topics.broadcasts, name="fanout.plan", concurrency=1)(plan)
        # concurrency=1: writes the fanout table.
        app.agent(topics.fanout_tasks, name="fanout.page", concurrency=1)(page)
        app.timer(
            interval=min(30.0, _settings.fanout_stall_s / 2), name=f"{__name__}.resume_stalled"
        )(resume_stalled)
