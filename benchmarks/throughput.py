"""Throughput: events/s through the whole Clarion pipeline (ingest → lane → route →
deliveries → sinks → receipts) next to a raw aiokafka consume→produce pass-through of the
same bytes on the same broker.

    python -m benchmarks.throughput [--events 50000] [--users 2000] [--partitions 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from benchmarks.common import (
    OUT_DIR,
    Clarion,
    Profile,
    Report,
    clarion_worker,
    cpu_seconds,
    edge_timestamp,
    encode,
    faust_hop_process,
    group_lag,
    ingest_lag,
    kafka_admin,
    kafka_producer,
    log,
    make_profiles,
    markdown_table,
    offsets_reader,
    partitions_of,
    ratio,
    record_count,
    run_benchmark,
    run_tag,
    seed_profiles,
    send_all,
)
from benchmarks.profile import sampling, stage_shares
from devenv.traffic import EVENT_MIX, make_event, user_ids
from logic import rules as rules_module
from logic.topic_names import in_app_sink_group, outbox_sink_group
from schemas.common import Channel, Lane
from streams.admin import ensure_topics
from streams.catalog import (
    DLQ_EVENTS,
    ESCALATIONS,
    INGRESS,
    INGRESS_FOR_TYPE,
    RECEIPTS,
    RETRIES,
    TopicSpec,
    delivery_topic,
    lane_topic,
)
from tables import keys

# live_started is parked on `broadcasts` and yields no delivery: not part of this pipeline.
MIX = [(kind, weight) for kind, weight in EVENT_MIX if kind != "live_started"]
_STATUS = re.compile(rb'"status":"([a-z_]+)"')
PROFILE = OUT_DIR / "throughput.pyspy.txt"


@dataclass(frozen=True)
class Input:
    ingress: str  # topic name without the run prefix
    key: bytes
    value: bytes


def build_inputs(n: int, users: list[str], rng: random.Random) -> list[Input]:
    kinds = rng.choices([k for k, _ in MIX], [w for _, w in MIX], k=n)
    inputs = []
    for kind in kinds:
        recipient, actor = rng.sample(users, 2)
        event = make_event(kind, recipient, actor, rng)
        inputs.append(Input(INGRESS_FOR_TYPE[kind], recipient.encode(), encode(event)))
    return inputs


# --------------------------------------------------------------------------- baseline


async def raw_passthrough(bootstrap: str, inputs: list[Input], partitions: int) -> dict[str, Any]:
    """Preload the events into raw.in, then copy raw.in → raw.out with one consumer and one
    producer, committing after each batch's sends are acked (at-least-once, as Faust does)."""
    prefix = f"b{run_tag()}."
    src, dst = prefix + "raw.in", prefix + "raw.out"
    await ensure_topics(
        bootstrap,
        [TopicSpec("raw.in"), TopicSpec("raw.out")],
        prefix=prefix,
        partitions=partitions,
        replication_factor=1,
    )
    async with kafka_producer(bootstrap, linger_ms=5) as producer:
        preload_s = await send_all(producer, [(src, i.key, i.value) for i in inputs])
    log.info("raw: preloaded %d events in %.2f s", len(inputs), preload_s)

    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=prefix + "raw-passthrough",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        # acks=all and no linger: Faust's producer defaults, so the baseline sends alike.
        async with kafka_producer(bootstrap, acks="all") as producer:
            copied, first = 0, None
            while copied < len(inputs):
                batch = await consumer.getmany(timeout_ms=1000)
                if not batch:
                    continue
                if first is None:
                    first = time.perf_counter()  # group join and first fetch excluded
                futures = [
                    await producer.send(dst, r.value, key=r.key)
                    for records in batch.values()
                    for r in records
                ]
                for future in futures:
                    await future
                await consumer.commit()
                copied += len(futures)
            assert first is not None
            elapsed = time.perf_counter() - first
    finally:
        await consumer.stop()
    return {
        "events": copied,
        "seconds": round(elapsed, 3),
        "events_per_s": round(copied / elapsed, 1),
        "preload_events_per_s": round(len(inputs) / preload_s, 1),
        "source_topic": src,
    }


async def faust_passthrough(
    bootstrap: str, src: str, events: int, partitions: int, workdir: Path, stall_s: float
) -> dict[str, Any]:
    """The Faust ceiling: benchmarks/faust_hop.py (one agent, bytes in → bytes out) copies
    the raw baseline's preloaded topic to another, in its own process and consumer group.
    Timed from the first to the last copied record's broker timestamp; CPU of the process."""
    tag = run_tag()
    dst = f"b{tag}.faust.out"
    await ensure_topics(
        bootstrap, [TopicSpec("faust.out")], prefix=f"b{tag}.", partitions=partitions,
        replication_factor=1,
    )  # fmt: skip
    async with (
        faust_hop_process(bootstrap, src, dst, workdir, "throughput.faust_hop.log") as (
            proc,
            log_path,
        ),
        offsets_reader(bootstrap) as reader,
    ):
        done, changed, last = 0, time.monotonic(), -1
        cpu_start, done_start = None, 0  # at the first copies: start-up excluded
        while done < events and time.monotonic() - changed < stall_s:
            await asyncio.sleep(0.25)
            done = await record_count(reader, [dst])
            if done != last:
                last, changed = done, time.monotonic()
            if cpu_start is None and done > 0:
                cpu_start, done_start = cpu_seconds(proc.pid), done
        cpu_end = cpu_seconds(proc.pid)
        first = await edge_timestamp(reader, [dst], last=False)
        end = await edge_timestamp(reader, [dst], last=True)
    assert first is not None and end is not None, f"bare Faust copied nothing: {log_path}"
    span = end - first
    return {
        "events": done,
        "complete": done >= events,
        "seconds": round(span, 3),
        "events_per_s": round(done / span, 1),
        "cpu_us_per_event": (
            None
            if cpu_start is None or cpu_end is None or done <= done_start
            else round((cpu_end - cpu_start) / (done - done_start) * 1e6, 1)
        ),
    }


# --------------------------------------------------------------------------- Clarion


async def minute_start(margin_s: float = 0.5) -> None:
    """Sleep until `margin_s` past the next wall-clock minute, unless that is just now.
    Windows are aligned to the epoch (logic/windows.aligned_window), so every 30 s and 60 s
    window starts there."""
    into = time.time() % 60
    if not margin_s <= into <= margin_s + 1:
        await asyncio.sleep((60 - into + margin_s) % 60)


async def clarion_pipeline(
    bootstrap: str,
    workdir: Path,
    inputs: list[Input],
    profiles: list[Profile],
    args: argparse.Namespace,
    restamped: Callable[[], list[Input]] | None = None,
) -> dict[str, Any]:
    """Start a worker, seed profiles, then produce every event as fast as possible and time
    from the worker's first output record until it has routed every event.

    With `restamped`, the events are first made again (the same mix, stamped now) just after
    a wall-clock minute starts: a span shorter than 29 s then holds no window boundary, so
    each run measures the same work (otherwise a run whose span crossed one also flushed
    the windows' deliveries, 2.3 times as many: --full measures the flush)."""
    extra_env = {"CLARION_RULES_PATH": str(full_pipeline_rules(workdir, args))} if args.full else {}
    async with clarion_worker(
        bootstrap, workdir, args.partitions, "throughput", args.worker_loglevel,
        extra_env=extra_env,
    ) as clarion:  # fmt: skip
        await seed_profiles(clarion, profiles, timeout_s=30)
        log.info("clarion: %d profiles applied", len(profiles))
        if restamped is not None:
            await minute_start()
            inputs = restamped()
        cpu_before = clarion.cpu_seconds()
        async with contextlib.AsyncExitStack() as stack:
            if args.profile:
                assert clarion.worker.proc is not None
                await stack.enter_async_context(sampling(clarion.worker.proc.pid, PROFILE))
            async with kafka_producer(bootstrap, linger_ms=5) as producer:
                produce_started = time.time()
                produce_s = await send_all(
                    producer, [(clarion.topic(i.ingress), i.key, i.value) for i in inputs]
                )
            log.info("clarion: produced %d events in %.2f s", len(inputs), produce_s)
            if args.full:
                figures = await _wait_full_pipeline(clarion, len(inputs), args)
            else:
                figures = await _wait_and_measure(clarion, len(inputs), args.stall)
            cpu_after, cpu_wall = clarion.cpu_seconds(), time.time() - produce_started
    figures["input_events_per_s"] = round(len(inputs) / produce_s, 1)
    first_output, last_output = figures.pop("first_output_ts"), figures.pop("last_output_ts")
    if first_output is not None:
        # The profiles' changelog records, written before the produce, are outputs too.
        first_output = max(first_output, produce_started)
    if first_output is not None and last_output is not None:
        span = last_output - first_output
        figures["seconds"] = round(span, 3)
        figures["events_per_s"] = round(len(inputs) / span, 1)
        figures["deliveries_per_s"] = round(figures["deliveries"] / span, 1)
        figures["receipts_per_s"] = round(figures["receipts"] / span, 1)
        # Also from the first event produced: includes ingest's start on the first batch.
        figures["events_per_s_from_first_produce"] = round(
            len(inputs) / (last_output - produce_started), 1
        )
    if cpu_before is not None and cpu_after is not None:
        # ~1.0 means the (single-threaded) worker was CPU-bound the whole time.
        figures["worker_cpu_utilisation"] = round((cpu_after - cpu_before) / cpu_wall, 2)
        figures["cpu_us_per_event"] = round((cpu_after - cpu_before) / len(inputs) * 1e6, 1)
        # Events the worker handles per second of its own CPU (one core fully busy).
        figures["events_per_worker_core_s"] = round(len(inputs) / (cpu_after - cpu_before), 1)
        if args.profile:
            # Each stage's share of the sampled CPU, as µs of worker CPU per input event.
            figures["stage_cpu_us_per_event"] = {
                stage: round(share * figures["cpu_us_per_event"], 1)
                for stage, share in stage_shares(PROFILE).items()
            }
    return figures


async def _wait_and_measure(clarion: Clarion, events: int, stall_s: float) -> dict[str, Any]:
    """Wait until the worker's group has committed every ingress record and every lane record
    (Faust commits only what its agents finished), i.e. every event was routed: delivered,
    folded into a digest window or dropped.

    Not "until every receipt is in": since aggregation, social and bulk notifications sit
    in 30-60 s (marketing: 1 h) windows by design, and the ticks flushing them keep
    producing deliveries long after the input is absorbed."""
    ingress, lanes, deliveries, receipts = _pipeline_topics(clarion)
    async with (
        offsets_reader(clarion.bootstrap) as reader,
        kafka_admin(clarion.bootstrap) as admin,
    ):
        state, changed, last_log = -1, time.monotonic(), 0.0
        while True:
            lag = await group_lag(admin, reader, clarion.app_id, lanes)
            lag += await ingest_lag(admin, reader, clarion.app_id, clarion.prefix, ingress)
            if lag == 0 and await record_count(reader, ingress) >= events:
                break
            if lag != state:
                state, changed = lag, time.monotonic()
            elif time.monotonic() - changed > stall_s:
                log.warning(
                    "clarion: no progress for %.0f s (%d ingress/lane records not routed); "
                    "log tail:\n%s",
                    stall_s,
                    lag,
                    clarion.worker.log_tail(),
                )
                break
            if time.monotonic() - last_log > 5:
                last_log = time.monotonic()
                log.info("clarion: %d ingress/lane records not yet routed", lag)
            await asyncio.sleep(0.25)
        # The span: from the first record the worker wrote (ingest routes in place, so that
        # is a delivery, receipt, lane record or table changelog) to the last. The end is
        # taken right away, before the counts (which read every receipt, for seconds), so
        # that windows the ticks flush meanwhile do not move it; commits come every 1 s
        # (ingest's loaders) and 2.8 s (Faust), so it is known to within that.
        outputs = [*lanes, *deliveries, receipts, *await _changelogs(admin, clarion)]
        span = {
            "last_output_ts": await edge_timestamp(reader, outputs, last=True),
            "first_output_ts": await edge_timestamp(reader, outputs, last=False),
        }
        return await _counts(admin, reader, clarion, events, lag) | span


def _pipeline_topics(clarion: Clarion) -> tuple[list[str], list[str], list[str], str]:
    """The worker's ingress, lane and delivery topics, and its receipts topic."""
    return (
        [clarion.topic(name) for name in INGRESS],
        [clarion.topic(lane_topic(lane)) for lane in Lane],
        [clarion.topic(delivery_topic(ch, lane)) for ch in Channel for lane in Lane],
        clarion.topic(RECEIPTS),
    )


async def _changelogs(admin: Any, clarion: Clarion) -> list[str]:
    """The worker's table changelog topics ("<app id>-<table>-changelog")."""
    return [
        t
        for t in await admin.list_topics()
        if t.startswith(clarion.app_id + "-") and t.endswith("-changelog")
    ]


async def _counts(
    admin: Any, reader: AIOKafkaConsumer, clarion: Clarion, events: int, lag: int
) -> dict[str, Any]:
    """What the worker wrote, read after either wait (`lag`: records it had not committed)."""
    _, lanes, deliveries, receipts = _pipeline_topics(clarion)
    return {
        "complete": lag == 0,
        "events": events,
        # Notifications that crossed a lane topic (the rest were routed in place).
        "lane_records": await record_count(reader, lanes),
        "deliveries": await record_count(reader, deliveries),
        # Deliveries the sinks had not finished when route had: small if they keep up.
        "deliveries_not_yet_sunk": await sink_lag(admin, reader, clarion),
        "receipts": await record_count(reader, [receipts]),
        "receipts_by_status": await statuses(reader, receipts),
        "dead_lettered": await record_count(reader, [clarion.topic(DLQ_EVENTS)]),
    }


async def sink_lag(admin: Any, reader: AIOKafkaConsumer, clarion: Clarion) -> int:
    """Delivery records the sinks have not committed. With no provider configured every
    channel's sink reads its topics through a topic loader with its own consumer group
    (streams/topic_loader.py): the in-app sink's and the outbox's, one per lane."""
    lag = 0
    for lane in Lane:
        in_app = [clarion.topic(delivery_topic(Channel.IN_APP, lane))]
        others = [
            clarion.topic(delivery_topic(c, lane)) for c in Channel if c is not Channel.IN_APP
        ]
        lag += await group_lag(admin, reader, in_app_sink_group(clarion.app_id, lane), in_app)
        lag += await group_lag(admin, reader, outbox_sink_group(clarion.app_id, lane), others)
    return lag


def full_pipeline_rules(workdir: Path, args: argparse.Namespace) -> Path:
    """The packaged rules with every window and escalation `--full-window-s` long and the
    rate limits lifted, so that every window closes, every escalation step comes due and
    every delivery is sunk within the run (no window waits an hour for a token)."""
    text = (Path(rules_module.__file__).parent / "rules.toml").read_text()
    w = f"{args.full_window_s:g}"
    text = re.sub(r"(?m)^(window_s|confirm_within_s) = \d+", rf"\1 = {w}", text)
    text = re.sub(r"per_hour = \d+, burst = \d+", "per_hour = 100000000, burst = 1000000", text)
    path = workdir / "full-pipeline-rules.toml"
    path.write_text(text)
    return path


async def _wait_full_pipeline(
    clarion: Clarion, events: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Wait until the whole pipeline has drained: every ingress, lane, delivery, escalation
    and retry record committed by the worker's group (routed, flushed, sunk), no delivery,
    receipt or escalation written for three window lengths, and no window left open."""
    ingress, lanes, deliveries, receipts = _pipeline_topics(clarion)
    later = [clarion.topic(ESCALATIONS), clarion.topic(RETRIES)]
    outputs = [*deliveries, receipts, *later]
    quiet_s = 3 * args.full_window_s + 3
    async with (
        offsets_reader(clarion.bootstrap) as reader,
        kafka_admin(clarion.bootstrap) as admin,
    ):
        written, since, last_log, stalled = -1, time.monotonic(), 0.0, time.monotonic()
        lag = -1
        while True:
            now = time.monotonic()
            count = await record_count(reader, outputs)
            new_lag = await group_lag(admin, reader, clarion.app_id, lanes + later)
            new_lag += await ingest_lag(admin, reader, clarion.app_id, clarion.prefix, ingress)
            new_lag += await sink_lag(admin, reader, clarion)
            if count != written or new_lag != lag:
                written, lag, since = count, new_lag, now
                stalled = now
            if lag == 0 and now - since > quiet_s and await record_count(reader, ingress) >= events:
                break
            if now - stalled > args.stall + quiet_s:
                log.warning("clarion: no progress (lag %d); log tail:\n%s", lag,
                            clarion.worker.log_tail())  # fmt: skip
                break
            if now - last_log > 5:
                last_log = now
                log.info("clarion: %d records not yet consumed, %d written", lag, count)
            await asyncio.sleep(0.25)
        changelogs = await _changelogs(admin, clarion)
        return await _counts(admin, reader, clarion, events, lag) | {
            "windows_left_open": await open_windows(reader, clarion.changelog("digests")),
            "first_output_ts": await edge_timestamp(
                reader, [*outputs, *lanes, *changelogs], last=False
            ),
            "last_output_ts": await edge_timestamp(reader, outputs, last=True),
        }


async def open_windows(consumer: AIOKafkaConsumer, changelog: str) -> int:
    """Windows still open at the end: keys of the digests changelog whose last record is
    not a tombstone, leaving out the per-partition progress rows."""
    last: dict[bytes, bool] = {}
    async for r in _whole(consumer, changelog):
        if r.key is not None and keys.digest_progress_partition(r.key) is None:
            last[r.key] = r.value is not None
    return sum(last.values())


async def statuses(consumer: AIOKafkaConsumer, topic: str) -> dict[str, int]:
    """Receipts per status (delivered, sent, throttled, suppressed…), read after the run."""
    counts: Counter[str] = Counter()
    async for r in _whole(consumer, topic):
        # A regex, not a JSON parse: only the status is needed, and it is fast.
        match = _STATUS.search(r.value)
        counts[match.group(1).decode() if match else "?"] += 1
    return dict(counts.most_common())


async def _whole(consumer: AIOKafkaConsumer, topic: str) -> AsyncIterator[Any]:
    """Every record of `topic` up to its end offsets now (at most 60 s of reading)."""
    tps = await partitions_of(consumer, topic)
    ends = await consumer.end_offsets(tps)
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    remaining = dict(ends)
    deadline = time.monotonic() + 60
    try:
        while any(left > 0 for left in remaining.values()) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                remaining[tp] = ends[tp] - (records[-1].offset + 1)
                for r in records:
                    yield r
    finally:
        consumer.unsubscribe()


# --------------------------------------------------------------------------- report


async def benchmark(args: argparse.Namespace, bootstrap: str, workdir: Path) -> Report:
    rng = random.Random(args.seed)
    users = user_ids(args.users)
    profiles = make_profiles(users, rng)
    inputs = build_inputs(args.events, users, rng)

    # Baseline first, while no worker competes for the 2 cores.
    raw = await raw_passthrough(bootstrap, inputs, args.partitions)
    log.info("raw: %.0f events/s", raw["events_per_s"])
    bare = await faust_passthrough(
        bootstrap, raw.pop("source_topic"), len(inputs), args.partitions, workdir, args.stall
    )
    log.info("bare Faust hop: %.0f events/s", bare["events_per_s"])

    def restamped() -> list[Input]:
        return build_inputs(args.events, users, random.Random(args.seed))

    restamp = None if args.full else restamped
    clarion = await clarion_pipeline(bootstrap, workdir, inputs, profiles, args, restamp)
    log.info("clarion: %s events/s", clarion.get("events_per_s"))

    figures: dict[str, Any] = {
        "benchmark": "throughput",
        "events": args.events,
        "users": args.users,
        "partitions": args.partitions,
        "clarion": clarion,
        "raw": raw,
        "bare_faust": bare,
        "ratio_events_per_s": ratio(clarion.get("events_per_s"), raw["events_per_s"]),
        "ratio_to_bare_faust": ratio(clarion.get("events_per_s"), bare["events_per_s"]),
    }
    rows = [
        ("events/s (end to end)", clarion.get("events_per_s"), bare["events_per_s"],
         raw["events_per_s"], figures["ratio_to_bare_faust"], figures["ratio_events_per_s"]),
        ("CPU µs per event", clarion.get("cpu_us_per_event"), bare["cpu_us_per_event"],
         "-", "-", "-"),
        ("events per second of worker CPU (per core)", clarion.get("events_per_worker_core_s"),
         "-", "-", "-", "-"),
        ("deliveries/s", clarion.get("deliveries_per_s"), "-", "-", "-", "-"),
        ("receipts/s", clarion.get("receipts_per_s"), "-", "-", "-", "-"),
        ("measured span (s)", clarion.get("seconds"), bare["seconds"], raw["seconds"], "-", "-"),
        ("input rate, events/s (producer)", clarion["input_events_per_s"], "-",
         raw["preload_events_per_s"], "-", "-"),
        ("worker CPU utilisation", clarion.get("worker_cpu_utilisation"), "-", "-", "-", "-"),
    ]  # fmt: skip
    stages = clarion.get("stage_cpu_us_per_event")
    stage_table = (
        "CPU µs per event by stage (py-spy samples holding the GIL, charged to the innermost "
        "stage on the stack; benchmarks/profile.py):\n\n"
        + markdown_table(("stage", "CPU µs per event"), list(stages.items()))
        if stages
        else ""
    )
    by_status = ", ".join(f"{k} {v}" for k, v in clarion["receipts_by_status"].items())
    markdown = "\n\n".join([
        "# Throughput: Clarion end to end vs a bare Faust hop and a raw aiokafka pass-through",
        f"{args.events} events ({', '.join(k for k, _ in MIX)}) to {args.users} users, "
        f"{args.partitions} partitions, one worker, one local broker.",
        markdown_table(
            ("figure", "Clarion", "bare Faust hop", "raw aiokafka", "÷ bare Faust", "÷ raw"), rows
        ),
        f"Clarion: {clarion['lane_records']} lane records, {clarion['deliveries']} "
        f"deliveries, {clarion['receipts']} receipts ({by_status}), "
        f"{clarion['dead_lettered']} dead-lettered; complete: {clarion['complete']}"
        + (
            f"; full pipeline (windows {args.full_window_s:g} s, rate limits lifted), windows "
            f"left open: {clarion['windows_left_open']}."
            if args.full
            else "."
        ),
        stage_table,
        "Clarion is timed from the first to the last record the worker wrote (lane records, "
        "deliveries, receipts, table changelogs) once its consumer group has committed "
        "every ingress and lane record, i.e. route has delivered, folded into a digest window "
        "or dropped every notification; Faust commits every 2.8 s, so the end is known to "
        "within that. Digests go out when their window closes (30-60 s, marketing 1 h), not "
        f"within the span; deliveries the sinks had not finished at the end: "
        f"{clarion['deliveries_not_yet_sunk']}. The raw pass-through is timed from its first "
        "fetched batch to its last acked send; the bare Faust hop (benchmarks/faust_hop.py, one "
        "agent copying bytes, Clarion's producer settings) from its first to its last copied "
        "record. CPU µs per event: the worker's CPU from the first produce to the end over "
        "the events; the bare hop's from its first copies to its last.",
    ])  # fmt: skip
    return Report(figures, markdown)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the worker with py-spy and report CPU µs per event per stage",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="the full pipeline: windows and escalations --full-window-s long, rate limits "
        "lifted, timed until every window is flushed and every delivery sunk",
    )
    parser.add_argument("--full-window-s", type=float, default=5.0)
    parser.add_argument(
        "--worker-loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"]
    )
    parser.add_argument(
        "--stall",
        type=float,
        default=30.0,
        help="give up waiting once the worker made no progress this long",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="stop everything after this many seconds "
        "(default: 120 + events/100, i.e. at least 100 events/s)",
    )
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = 120 + args.events / 100
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark("throughput", lambda b, w: benchmark(args, b, w), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
