"""digest: tumbling aggregation windows per (recipient, group key), flushed by ticks.

Why not Faust's windowed tables: their expiry runs on a wall-clock timer, restored windows
never expire, and one close watermark is shared by all partitions. Here an
open window is a plain row in the changelog-backed `digests` table and Clarion decides when
it goes out:

- A timer on every worker sends a tick to each `ticks` partition it owns. Processing the
  tick for partition p is an event of partition p, so the flush may read and write p's
  tables; the tick topic is co-partitioned with the lanes, so p's owner gets it.
- A window is due once its deadline is behind the lane partition's *cutoff*: the wall clock
  when the partition is caught up, otherwise the newest record time processed (stream time).
  A worker catching up after a crash therefore folds the whole backlog into the window
  before flushing it: one notification per window, with the full count.
- Exactly once per window across crashes: every write for partition p (window rows and the
  progress row) goes to changelog partition p in order, so a restore is a consistent
  prefix. Each notification carries its ingress (topic:partition, offset); the windows'
  `sources` and the progress row give, per ingress partition, the highest offset already
  folded in, and a copy at or below it is skipped. That covers both a lane record
  reprocessed here and the copies ingest re-sends when it reprocesses its own tail. Deliveries of a
  flushed window are acknowledged by the broker before its row is deleted; a crash between
  the two re-flushes it with the same deterministic id, which the sinks already skip.
- A notification arriving after its window was flushed joins the window open now
  (`closed_until`), never a second notification for the old window.
- A window overdue by more than _OVERDUE_S is logged with its partition's cutoff and what
  holds it back (which partition is not caught up), so a late window can be told from a
  lost one.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import faust

from agents import emit
from logic import windows
from logic.lanes import quiet_end
from schemas.common import Lane
from schemas.digests import DigestWindow
from schemas.notifications import Notification
from streams import metrics
from tables import changelog, keys
from tables.rows import DigestProgress, LaneProgress

if TYPE_CHECKING:
    from streams.context import StageContext

log = logging.getLogger("clarion.digest")
DIGEST_LANES = (Lane.HIGH, Lane.SOCIAL, Lane.BULK)
_ACK_TIMEOUT_S = 10.0
# A window this far past its deadline is reported (at most once per interval per partition).
_OVERDUE_S = 15.0


def _load(ctx: StageContext, key: bytes) -> DigestWindow | None:
    # The index keeps the windows it has seen decoded: a fold then costs no table read and
    # no decode (a window holds a whole Notification). Only this stage writes the table.
    index = ctx.windows
    w = index.open_windows.get(key)
    if w is None:
        value = ctx.tables.digests.get(key)
        if isinstance(value, DigestWindow):
            w = index.open_windows[key] = value
    return w


async def _store(ctx: StageContext, key: bytes, w: DigestWindow, partition: int) -> None:
    index = ctx.windows
    before = index.open_windows.get(key)
    # The index first, before the write can wait: a fold that runs meanwhile (another
    # ingest agent routes in place) must build on this window, not the one before it.
    index.open_windows[key] = w
    # One heap entry per deadline, not per fold: a window folding a million likes used to
    # leave a million entries, each read back from the table at the flush.
    if before is None or before.deadline != w.deadline:
        heapq.heappush(index.heaps[(w.lane, partition)], (w.deadline, key))
    await changelog.put(ctx.tables.digests, key, w)


async def _delete(ctx: StageContext, key: bytes) -> None:
    ctx.windows.open_windows.pop(key, None)
    await changelog.delete(ctx.tables.digests, key)


async def gather(
    ctx: StageContext,
    n: Notification,
    window_s: float,
    hold_until: float | None,
    message: Any,
    ts: float,
) -> None:
    """Fold a lane notification into its window (opening one if needed); `ts` places it."""
    index, rules = ctx.windows, ctx.rules
    partition = message.partition
    lp = (n.lane, partition)
    if windows.already_counted(index.applied[lp], n):
        return  # a replayed copy: the restored window (or one already sent) has it
    rule = rules.for_category(n.category)
    group = windows.group_key(n, rule)
    key = keys.window_key(n.recipient_id, group)
    if key in index.flushing:  # a tick is sending this window: join the next one
        await index.flushing[key]
    w = _load(ctx, key)
    if w is not None and not windows.belongs_to(w, ts):
        # Its tick has not come yet, but stream time says the window is over.
        await flush(ctx, key, w, partition, time.time())
        w = _load(ctx, key)  # still there if it was held (quiet hours, rate limit)
    if w is None:
        w = windows.open_window(n, group, ts, window_s, index.closed_until.get(lp, 0.0), hold_until)
    else:
        w = windows.add_to_window(w, n, rules.max_actors, hold_until)
    await _store(ctx, key, w, partition)
    index._merge(lp, w.sources)
    metrics.inc(metrics.digest_gathered, n.lane.value)


async def flush(ctx: StageContext, key: bytes, w: DigestWindow, partition: int, now: float) -> bool:
    """Send the window as one notification, or move its deadline if it must wait.
    Returns whether it went out (or was dropped)."""
    return await flush_many(ctx, [(key, w)], partition, now) == 1


async def flush_many(
    ctx: StageContext, due: list[tuple[bytes, DigestWindow]], partition: int, now: float
) -> int:
    """Send each due window of one partition as one notification (or move its deadline if
    it must wait), with one wait for the broker for all of them, then one progress write and
    the rows' deletions. Returns how many went out (or were dropped)."""
    index = ctx.windows
    loop = asyncio.get_running_loop()
    mine: list[tuple[bytes, DigestWindow]] = []
    for key, w in due:
        if key in index.flushing:  # being sent by another caller: it decides
            await index.flushing[key]
            continue
        index.flushing[key] = loop.create_future()
        mine.append((key, w))
    try:
        return await _flush_many(ctx, mine, partition, now)
    finally:
        for key, _ in mine:
            index.flushing.pop(key).set_result(None)


async def _flush_many(
    ctx: StageContext, due: list[tuple[bytes, DigestWindow]], partition: int, now: float
) -> int:
    index = ctx.windows
    sending: list[tuple[bytes, DigestWindow]] = []
    futures: list[Any] = []
    for key, w in due:
        prefs, contact = emit.profile(ctx, w.recipient_id)
        held = quiet_end(prefs, datetime.fromtimestamp(now, UTC))
        if held is not None:  # quiet hours began after the window opened
            await _store(ctx, key, w.model_copy(update={"deadline": held}), partition)
            continue
        n = windows.to_notification(w)
        plan = emit.plan(ctx, n, prefs, contact, now)
        if w.lane is not Lane.BULK:
            # Over the limit, social (and held high) folds into the user's next digest: keep
            # gathering until every limited channel has a token again.
            wait = emit.seconds_until_tokens(ctx, plan, n, prefs, now)
            if wait > 0:
                await _store(ctx, key, w.model_copy(update={"deadline": now + wait}), partition)
                continue
        futures.extend(await emit.emit(ctx, plan, n, prefs, now, limited=True))
        sending.append((key, w))
    if not sending:
        return 0
    # The broker must have the deliveries before the window rows are gone: one wait for the
    # whole batch. If it does not answer in time (or the worker is stopping and its
    # producer with it), keep the rows and their heap entries: the windows go out again at
    # the next tick under the same ids, which the sinks skip.
    try:
        await asyncio.wait_for(asyncio.gather(*futures), _ACK_TIMEOUT_S)
    except TimeoutError:
        log.warning("deliveries of %d window(s) not acknowledged; sent again", len(sending))
        for key, w in sending:
            heapq.heappush(index.heaps[(w.lane, partition)], (w.deadline, key))
        return 0
    # The watermarks that say "these ingress offsets are in a window already sent" go to the
    # changelog before the rows' deletion: a restore that has a deletion has them too.
    # (Written after it, a crash in between let the replayed lane records re-open the sent
    # window under the same id with a partial count.)
    for _key, w in sending:
        lp = (w.lane, partition)
        index.closed_until[lp] = max(index.closed_until.get(lp, 0.0), w.window_end)
    await _save_progress(ctx, partition)
    for key, w in sending:
        await _delete(ctx, key)
        metrics.digest_window_flushed(w.lane, w.count)
    return len(sending)


async def _save_progress(ctx: StageContext, partition: int) -> None:
    """The partition's progress row, whole, from the index (which the rebuild fills from
    the row, so it holds all the row did): written, never read back and merged, so two
    writers cannot interleave a read and a write."""
    index = ctx.windows
    progress: DigestProgress = {
        lane: LaneProgress(
            applied=dict(index.applied[(lane, partition)]),
            closed_until=index.closed_until.get((lane, partition), 0.0),
        )
        for lane in DIGEST_LANES
        if (lane, partition) in index.applied or (lane, partition) in index.closed_until
    }
    await changelog.put(ctx.tables.digests, keys.digest_progress_key(partition), progress)


async def flush_due(ctx: StageContext, partition: int, now: float) -> int:
    index = ctx.windows
    flushed = 0
    for lane in DIGEST_LANES:
        lp = (lane, partition)
        cutoff = index.cutoff(lane, partition, now)
        # Advance first: a record arriving while these flushes await the broker must join
        # the next window, not one being sent.
        index.closed_until[lp] = max(index.closed_until.get(lp, 0.0), cutoff)
        heap = index.heaps[lp]
        due: dict[bytes, DigestWindow] = {}
        while heap and heap[0][0] <= cutoff:
            deadline, key = heapq.heappop(heap)
            w = _load(ctx, key)
            if w is None or w.deadline != deadline or key in due:
                continue  # already flushed, or a later heap entry stands for it
            due[key] = w
        flushed_here = await flush_many(ctx, list(due.items()), partition, now) if due else 0
        flushed += flushed_here
        if heap and heap[0][0] < now - _OVERDUE_S:
            _report_overdue(ctx, lane, partition, cutoff, now)
    return flushed


def _report_overdue(
    ctx: StageContext, lane: Lane, partition: int, cutoff: float, now: float
) -> None:
    """Say why windows are overdue: the cutoff (and which partition keeps it at stream
    time), so an operator, or a test that waited in vain, can tell a late window from a
    lost one. At most once per _OVERDUE_S per lane partition."""
    index = ctx.windows
    lp = (lane, partition)
    if now - index.overdue_logged.get(lp, 0.0) < _OVERDUE_S:
        return
    index.overdue_logged[lp] = now
    heap = index.heaps[lp]
    overdue = sum(1 for deadline, _ in heap if deadline < now - _OVERDUE_S)
    log.warning(
        "windows overdue: %s partition %d: %d window(s) %.0f s or more past their deadline "
        "(oldest %.3f, %.0f s ago); cutoff %.3f (%s); stream time %.3f; not caught up: %s",
        lane.value, partition, overdue, _OVERDUE_S, heap[0][0], now - heap[0][0], cutoff,
        "wall clock" if cutoff == now else "stream time",
        index.stream_time.get(lp, 0.0), ", ".join(_behind(ctx, lane, partition)) or "none",
    )  # fmt: skip


def _behind(ctx: StageContext, lane: Lane, partition: int) -> list[str]:
    """The partitions feeding the lane partition that are not caught up, with processed
    position, committed offset and highwater."""
    index, positions = ctx.windows, ctx.positions
    found = []
    for tp in index.feeding(lane, partition):
        if positions.caught_up(tp):
            continue
        found.append(f"{tp.topic}[{tp.partition}] {positions.describe(tp)}")
    return found


def install(app: faust.App, ctx: StageContext) -> None:
    index, topics, _settings = ctx.windows, ctx.topics, ctx.settings
    app.on_partitions_revoked.connect(index.mark_stale)
    app.on_partitions_assigned.connect(index.on_assigned)

    async def send_ticks() -> None:
        now = time.time()
        for partition in index.assigned():
            await topics.ticks.send(value=now, partition=partition)

    async def on_tick(stream: faust.StreamT[float]) -> None:
        async for event in stream.events():
            if app.should_stop:  # shutting down: the next owner flushes
                continue
            index.ensure_current()
            flushed = await flush_due(ctx, event.message.partition, time.time())
            if flushed:
                log.debug("flushed %d windows in partition %d", flushed, event.message.partition)

    # Only a worker that serves a lane with windows ticks (a critical-only worker has none).
    if _settings.served_lanes & set(DIGEST_LANES):
        app.timer(interval=_settings.tick_interval_s, name=f"{__name__}.send_ticks")(send_ticks)
        app.agent(topics.ticks, name="digest.ticks", concurrency=1)(on_tick)
