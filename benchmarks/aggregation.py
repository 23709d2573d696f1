"""Aggregation: N likes on one photo for one recipient, all inside one window, must come out
as exactly one notification with count N. Reports the rate at which likes are folded
(ingest → route → window), the delay from the moment the window could close (its end, or
the last fold if the backlog ran past it) to the flush, and, side by side on the same
broker, a raw aiokafka pass-through of the same likes as the baseline.

    python -m benchmarks.aggregation [--likes 100000] [--window 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from benchmarks.common import (
    Profile,
    Report,
    clarion_worker,
    encode,
    kafka_producer,
    log,
    markdown_table,
    offsets_reader,
    partitions_of,
    ratio,
    run_benchmark,
    seed_profiles,
    send_all,
)
from benchmarks.throughput import Input, raw_passthrough
from logic.partitioning import partition_of
from logic.windows import aligned_window
from schemas.common import Channel, Lane
from streams.catalog import delivery_topic

STAR = "star"
PACKAGED_RULES = Path(__file__).resolve().parents[1] / "logic" / "rules.toml"


def rules_with_like_window(window_s: int) -> str:
    text = PACKAGED_RULES.read_text()
    start = text.index("[categories.like]")
    end = text.index("[categories.comment]")
    like = text[start:end].replace("window_s = 30", f"window_s = {window_s}")
    return text[:start] + like + text[end:]


def like_inputs(n: int, occurred_at: str) -> list[Input]:
    """n likes from n distinct fans, one photo, one instant (a viral moment)."""
    return [
        Input("events.social", STAR.encode(), encode({
            "schema_version": 1, "type": "like", "event_id": f"like-{i}",
            "occurred_at": occurred_at, "actor_id": f"fan{i}", "actor_name": f"fan{i}",
            "recipient_id": STAR, "object": {"kind": "photo", "id": "sunset"},
        }))
        for i in range(n)
    ]  # fmt: skip


async def in_app_for_star(consumer: AIOKafkaConsumer, topic: str) -> list[tuple[float, dict]]:
    tps = await partitions_of(consumer, topic)
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    found = []
    for records in (await consumer.getmany(timeout_ms=500)).values():
        found += [
            (r.timestamp / 1000, json.loads(r.value))
            for r in records
            if r.key == STAR.encode() and r.value is not None
        ]
    return found


async def last_fold_time(consumer: AIOKafkaConsumer, changelog: str, partitions: int) -> float:
    """Timestamp of the last write of the star's window row before its flush deleted it."""
    tp = TopicPartition(changelog, partition_of(STAR, partitions))
    consumer.assign([tp])
    end = (await consumer.end_offsets([tp]))[tp]
    consumer.seek(tp, max(0, end - 50))
    last = 0.0
    for records in (await consumer.getmany(timeout_ms=1000)).values():
        for r in records:
            if r.key is not None and r.key.startswith(STAR.encode()) and r.value is not None:
                last = max(last, r.timestamp / 1000)
    return last


async def benchmark(args: argparse.Namespace, bootstrap: str, workdir: Path) -> Report:
    t0 = datetime.now(UTC)
    inputs = like_inputs(args.likes, t0.isoformat())
    raw = await raw_passthrough(bootstrap, inputs, args.partitions)
    log.info("raw: %.0f likes/s", raw["events_per_s"])

    rules = workdir / "rules.toml"
    rules.write_text(rules_with_like_window(args.window))
    profile = Profile(
        STAR,
        {"user_id": STAR},
        {"user_id": STAR, "devices": [{"token": "fcm-star-device", "platform": "fcm"}]},
    )
    async with clarion_worker(
        bootstrap,
        workdir,
        args.partitions,
        "aggregation",
        extra_env={"CLARION_RULES_PATH": str(rules)},
    ) as clarion:
        await seed_profiles(clarion, [profile], timeout_s=60)
        _, window_end = aligned_window(t0.timestamp(), args.window)
        async with kafka_producer(bootstrap, linger_ms=10, max_batch_size=512 * 1024) as producer:
            produce_s = await send_all(
                producer, [(clarion.topic(i.ingress), i.key, i.value) for i in inputs]
            )
        log.info("produced %d likes in %.1f s", args.likes, produce_s)

        topic = clarion.topic(delivery_topic(Channel.IN_APP, Lane.SOCIAL))
        deadline = time.monotonic() + args.timeout
        found: list[tuple[float, dict]] = []
        async with offsets_reader(bootstrap) as consumer:
            while not found and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                found = await in_app_for_star(consumer, topic)
            await asyncio.sleep(5.0)  # anything extra would be out by now
            found = await in_app_for_star(consumer, topic)
        # A fresh reader per topic: an assigned consumer only refreshes its own topics.
        # From the first fold (the first `digests` changelog record): ingest routes in
        # place, so no lane record marks the start any more.
        async with offsets_reader(bootstrap) as consumer:
            firsts = await _first_records(consumer, clarion.changelog("digests"))
            first_fold = min((r.timestamp / 1000 for r in firsts), default=None)
        async with offsets_reader(bootstrap) as consumer:
            last_fold = await last_fold_time(
                consumer, clarion.changelog("digests"), args.partitions
            )
        if not found:
            raise RuntimeError(
                "no notification came out; worker log:\n" + clarion.worker.log_tail()
            )

    flushed_at, delivery = found[0]
    could_close = max(window_end, last_fold)
    fold_s = (last_fold - first_fold) if first_fold else None
    figures: dict[str, Any] = {
        "benchmark": "aggregation",
        "likes": args.likes,
        "window_s": args.window,
        "notifications": len(found),
        "count": delivery["count"],
        "exactly_one_with_full_count": len(found) == 1 and delivery["count"] == args.likes,
        "body": delivery["body"],
        "produce_likes_per_s": round(args.likes / produce_s, 1),
        "fold_likes_per_s": round(args.likes / fold_s, 1) if fold_s else None,
        "raw_likes_per_s": raw["events_per_s"],
        "ratio_fold_to_raw": ratio(args.likes / fold_s if fold_s else None, raw["events_per_s"]),
        "window_end_to_last_fold_s": round(last_fold - window_end, 2),
        "flush_delay_s": round(flushed_at - could_close, 3),
    }
    rows = [
        ("notifications for the window", len(found), "-"),
        ("count carried", delivery["count"], args.likes),
        ("likes/s folded (first fold → last fold)", figures["fold_likes_per_s"],
         raw["events_per_s"]),
        ("ratio to raw pass-through", figures["ratio_fold_to_raw"], "-"),
        ("likes/s produced", figures["produce_likes_per_s"], raw["preload_events_per_s"]),
        ("last fold after window end (s)", figures["window_end_to_last_fold_s"], "-"),
        ("flush delay after the window could close (s)", figures["flush_delay_s"], "-"),
    ]  # fmt: skip
    markdown = "\n\n".join([
        "# Aggregation: N likes, one recipient, one window",
        f"{args.likes} likes from distinct fans on one photo, all stamped with one instant "
        f"inside one {args.window} s window; one worker, {args.partitions} partitions, one "
        "local broker. Baseline: the same likes copied by a raw aiokafka pass-through.",
        markdown_table(("figure", "Clarion", "raw / expected"), rows),
        f"Text: “{delivery['body']}”.",
        "The window closes by the wall clock only once the worker has no backlog on the "
        "partitions feeding it, so when folding runs past the window's end the notification "
        "goes out right after the last fold, still one notification with the full count.",
    ])  # fmt: skip
    return Report(figures, markdown)


async def _first_records(consumer: AIOKafkaConsumer, topic: str) -> list[Any]:
    tps = await partitions_of(consumer, topic)
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    batch = await consumer.getmany(timeout_ms=1000, max_records=len(tps) * 5)
    return [records[0] for records in batch.values() if records]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.aggregation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--likes", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="default: 180 + likes/200 (at least 200 likes/s)",
    )
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = 180 + args.likes / 200
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark("aggregation", lambda b, w: benchmark(args, b, w), args.timeout + 60)


if __name__ == "__main__":
    sys.exit(main())
