"""Celebrity fan-out: one `live_started` broadcast to N followers (default 1,000,000).

    python -m benchmarks.fanout [--followers 1000000] [--rate 0 (unpaced)] [--partitions 8]

One fan-out worker (CLARION_LANES=none, CLARION_FANOUT=true: the fan-out deployed on its
own, so its rate is not the bulk lane's), one local broker. The follow graph is loaded through the
`follows` topic into the followers table first (timed separately), then one broadcast goes
to the `broadcasts` topic and the fan-out writes one notification per follower to the bulk
lane. Proof of exactly once: the bulk lane topic is read back in full and every follower's
id must appear exactly once. Baselines, in the same run on the same broker: a raw aiokafka
producer writing the same number of pre-serialized notifications with the worker's
producer settings, once with one `send` per record and once in whole record batches per
partition (how the fan-out writes them; the fastest a fan-out could write them).
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

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.common import (
    Report,
    clarion_worker,
    edge_timestamp,
    kafka_producer,
    log,
    markdown_table,
    offsets_reader,
    partitions_of,
    ratio,
    run_benchmark,
    run_tag,
    send_all,
    wait_for_count,
)
from logic.fanout import to_follower
from logic.partitioning import partition_of
from logic.rules import load_rules
from schemas.common import Lane
from schemas.events import LiveStartedEvent
from streams.admin import ensure_topics
from streams.catalog import BROADCASTS, FOLLOWS, TopicSpec, lane_topic
from tables.keys import edge_key

STAR = "star"


def follower(i: int) -> str:
    return f"fan{i:08d}"


def broadcast_event() -> LiveStartedEvent:
    return LiveStartedEvent.model_validate(
        {
            "schema_version": 1,
            "type": "live_started",
            "event_id": f"live-{run_tag()}",
            "occurred_at": datetime.now(UTC).isoformat(),
            "actor_id": STAR,
            "actor_name": "Star",
            "object": {"kind": "stream", "id": "s1"},
            "audience": {"kind": "followers", "of": STAR},
            "stream_title": "Going live",
        }
    )


async def raw_fanout(bootstrap: str, n: int, partitions: int) -> dict[str, float]:
    """The baselines: n notifications, serialized up front, written by a plain aiokafka
    producer with the worker's producer settings (acks=all, 5 ms linger, 256 KiB batches):
    once one `send` per record, once as whole record batches per partition (`create_batch`
    / `send_batch`, what the fan-out itself does). Each gets its own topic."""
    event, rules, now = broadcast_event(), load_rules(None), datetime.now(UTC)
    records = [
        (follower(i).encode(), to_follower(event, follower(i), rules, now)
         .model_dump_json().encode())
        for i in range(n)
    ]  # fmt: skip
    figures: dict[str, float] = {}
    for mode in ("records", "batches"):
        topic = f"b{run_tag()}.raw.fanout.{mode}"
        await ensure_topics(
            bootstrap, [TopicSpec(topic)], prefix="", partitions=partitions, replication_factor=1
        )
        async with kafka_producer(
            bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
        ) as producer:
            if mode == "records":
                seconds = await send_all(producer, ((topic, k, v) for k, v in records))
            else:
                seconds = await send_batches(producer, topic, partitions, records)
        figures[f"{mode}_seconds"], figures[f"{mode}_per_s"] = seconds, n / seconds
    return figures


async def send_batches(
    producer: AIOKafkaProducer, topic: str, partitions: int, records: list[tuple[bytes, bytes]]
) -> float:
    """Every (key, value) to its murmur2 partition in whole record batches; the seconds
    until the last batch is acknowledged."""
    started = time.perf_counter()
    builders: dict[int, Any] = {}
    sent = []
    for key, value in records:
        partition = partition_of(key.decode(), partitions)
        builder = builders.setdefault(partition, producer.create_batch())
        if builder.append(key=key, value=value, timestamp=None) is None:
            sent.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = producer.create_batch()
            builder.append(key=key, value=value, timestamp=None)
    for partition, builder in builders.items():
        sent.append(await producer.send_batch(builder, topic, partition=partition))
    await asyncio.gather(*sent)
    return time.perf_counter() - started


async def read_back(bootstrap: str, topic: str, event_id: str) -> tuple[int, int, set[bytes]]:
    """(records of this broadcast, distinct recipients, recipients) on `topic`."""
    marker = event_id.encode()
    total, keys = 0, set()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=8 << 20
    )
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topic)
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            for tp, records in batch.items():
                for r in records:
                    if r.value is not None and marker in r.value:
                        total += 1
                        keys.add(r.key)
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return total, len(keys), keys


async def benchmark(args: argparse.Namespace, bootstrap: str, workdir: Path) -> Report:
    n = args.followers
    raw = await raw_fanout(bootstrap, n, args.partitions)
    log.info(
        "raw: %d notifications, %.0f/s one send per record, %.0f/s in whole batches",
        n, raw["records_per_s"], raw["batches_per_s"],
    )  # fmt: skip

    rate = args.rate if args.rate > 0 else 1e9
    async with clarion_worker(
        bootstrap,
        workdir,
        args.partitions,
        "fanout",
        lanes="none",
        extra_env={
            "CLARION_FANOUT": "true",
            "CLARION_FANOUT_PER_S": str(rate),
            "CLARION_FANOUT_PAGE_SIZE": str(args.page),
        },
    ) as clarion:
        graph_cpu_before = clarion.cpu_seconds()
        graph_started = time.monotonic()
        edges = (
            (clarion.topic(FOLLOWS), edge_key(STAR, follower(i)),
             json.dumps({"actor_id": STAR, "follower_id": follower(i)}).encode())
            for i in range(n)
        )  # fmt: skip
        async with kafka_producer(bootstrap, linger_ms=20, max_batch_size=512 * 1024) as p:
            await send_all(p, edges)
        produced_s = time.monotonic() - graph_started
        async with offsets_reader(bootstrap) as consumer:
            loaded = await wait_for_count(
                consumer, [clarion.changelog("followers")], n, stall_s=120
            )
        graph_s = time.monotonic() - graph_started
        graph_cpu_after = clarion.cpu_seconds()
        if loaded < n:
            raise RuntimeError(f"followers table stalled at {loaded} of {n} edges")
        log.info("follow graph: %d edges in %.1f s", n, graph_s)

        event = broadcast_event()
        bulk = clarion.topic(lane_topic(Lane.BULK))
        cpu_before = clarion.cpu_seconds()
        async with kafka_producer(bootstrap) as p:
            started_at = time.time()
            await p.send_and_wait(
                clarion.topic(BROADCASTS), event.model_dump_json().encode(), key=STAR.encode()
            )
        async with offsets_reader(bootstrap) as consumer:
            written = await wait_for_count(consumer, [bulk], n, stall_s=args.stall)
        cpu_after = clarion.cpu_seconds()
        async with offsets_reader(bootstrap) as consumer:
            first = await edge_timestamp(consumer, [bulk], last=False)
        async with offsets_reader(bootstrap) as consumer:
            last = await edge_timestamp(consumer, [bulk], last=True)
        total, distinct, keys = await read_back(bootstrap, bulk, event.event_id)
    expected = {follower(i).encode() for i in range(n)}
    exactly_once = total == distinct == n and keys == expected
    fanout_s = (last - started_at) if last else None
    figures: dict[str, Any] = {
        "benchmark": "fanout",
        "followers": n,
        "partitions": args.partitions,
        "page_size": args.page,
        "pacing_per_s": args.rate or None,
        "graph_load_s": round(graph_s, 1),
        "graph_edges_per_s": round(n / graph_s),
        # The load cannot be faster than the benchmark's producer writes `follows`.
        "follows_produced_per_s": round(n / produced_s),
        "graph_worker_cpu_us_per_edge": (
            round(1e6 * (graph_cpu_after - graph_cpu_before) / n)
            if graph_cpu_before is not None and graph_cpu_after is not None
            else None
        ),
        "notifications_written": written,
        "completion_s": round(fanout_s, 1) if fanout_s else None,
        "first_notification_after_s": round(first - started_at, 2) if first else None,
        "fanout_per_s": round(n / fanout_s) if fanout_s else None,
        "raw_per_s": round(raw["records_per_s"]),
        "ratio_to_raw": ratio(n / fanout_s if fanout_s else None, raw["records_per_s"]),
        "raw_batches_per_s": round(raw["batches_per_s"]),
        "ratio_to_raw_batches": ratio(n / fanout_s if fanout_s else None, raw["batches_per_s"]),
        "worker_cpu_s": round(cpu_after - cpu_before, 1) if cpu_before and cpu_after else None,
        "records_for_broadcast": total,
        "distinct_followers": distinct,
        "exactly_once": exactly_once,
    }
    rows = [
        ("followers", n, "-"),
        ("follow graph load (edges/s through the table)", figures["graph_edges_per_s"],
         figures["follows_produced_per_s"]),
        ("worker CPU per edge loaded (µs)", figures["graph_worker_cpu_us_per_edge"], "-"),
        ("first notification after the broadcast (s)", figures["first_notification_after_s"],
         "-"),
        ("completion: broadcast → last notification (s)", figures["completion_s"],
         round(raw["records_seconds"], 1)),
        ("fan-out rate (notifications/s)", figures["fanout_per_s"], figures["raw_per_s"]),
        ("ratio to raw producer, one send per record", figures["ratio_to_raw"], "-"),
        ("raw producer, whole batches (notifications/s)", figures["raw_batches_per_s"], "-"),
        ("ratio to raw producer, whole batches", figures["ratio_to_raw_batches"], "-"),
        ("worker CPU during the fan-out (s)", figures["worker_cpu_s"], "-"),
        ("notifications of the broadcast on the bulk lane", total, n),
        ("distinct followers among them", distinct, n),
        ("every follower exactly once", exactly_once, True),
    ]  # fmt: skip
    pacing = f"paced at {args.rate:.0f}/s" if args.rate else "unpaced (CLARION_FANOUT_PER_S=1e9)"
    markdown = "\n\n".join([
        f"# Fan-out: one broadcast to {n:,} followers",
        f"One fan-out-only worker, {args.partitions} partitions, pages of "
        f"{args.page}, {pacing}; one local broker. Baselines: one raw aiokafka producer "
        "writing the same number of pre-serialized notifications, one send per record and "
        "in whole record batches per partition (raw / expected: the per-record one). "
        "The graph load's column is the rate the benchmark's own producer wrote "
        "`follows` at, which the load (timed from the first edge sent to the last changelog "
        "record) cannot beat.",
        markdown_table(("figure", "Clarion", "raw / expected"), rows),
        "Exactly once is checked on the bulk lane topic, read back in full: every follower "
        "id appears once. The bulk lane's own consumers (route, sinks) are not running "
        "here: this is the fan-out stage's rate; see the throughput benchmark for the lane.",
    ])  # fmt: skip
    return Report(figures, markdown)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fanout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--followers", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.0, help="fan-out pacing; 0: unpaced")
    parser.add_argument("--stall", type=float, default=120.0, help="give up after no progress")
    parser.add_argument("--timeout", type=float, default=None, help="default: 300 + n/500")
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = 300 + args.followers / 500
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark("fanout", lambda b, w: benchmark(args, b, w), args.timeout + 60)


if __name__ == "__main__":
    sys.exit(main())
