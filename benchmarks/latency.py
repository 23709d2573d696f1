"""Latency: a critical event (payment / security alert) from produce to the recipient's
in-app SSE client, p50/p90/p99/max, first with no other traffic and then under steady
background load (the social/bulk mix to other users). Side by side, in the same phases on
the same broker: raw Kafka produce→consume latency of as many messages at the same pacing.

Two topologies (docs/architecture.md, "Lanes"):
  single  one worker serving every lane (default)
  split   one worker with CLARION_LANES=critical, which serves the SSE client, and one
          serving high,social,bulk, each its own consumer group; the background load goes
          to the second. This is how the critical lane is meant to be deployed.

    python -m benchmarks.latency [--critical 200] [--rate 10] [--background-rate 300]
                                 [--topology single|split]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.common import (
    TOKEN_SECRET,
    Clarion,
    LatencyStats,
    Report,
    clarion_worker,
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
    wait_profiles_applied,
)
from devenv.traffic import EVENT_MIX, make_event, user_ids
from logic.ids import notification_id
from logic.tokens import issue_token
from schemas.common import Lane
from streams.admin import ensure_topics
from streams.catalog import INGRESS_FOR_TYPE, RECEIPTS, TopicSpec, lane_topic
from streams.settings import Settings

VIP = "vip"
CRITICAL_KINDS = ("payment", "security_alert")
# Background traffic: the social and bulk lanes only, never to the VIP.
BACKGROUND_MIX = [
    (k, w) for k, w in EVENT_MIX if k in ("like", "comment", "follow", "mention", "marketing")
]
GRACE_S = 15.0  # how long to wait for stragglers after the last probe is sent
# Route's backlog is read from committed offsets, which trail by up to Faust's commit
# interval (2.8 s): this much input can look pending while the worker keeps up.
COMMIT_SLACK_S = 4.0


# --------------------------------------------------------------------------- receivers


class Receiver:
    """Notes when each probe id arrives (time.time(), like the send side)."""

    def __init__(self) -> None:
        self.received: dict[str, float] = {}
        self._arrival = asyncio.Event()

    def arrived(self, probe_id: str, at: float) -> None:
        self.received[probe_id] = at
        self._arrival.set()

    async def wait_for(self, probe_ids: Iterable[str], timeout_s: float) -> None:
        """Return once every id has arrived, or after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        wanted = set(probe_ids)
        while not wanted <= self.received.keys():
            self._arrival.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrival.wait(), remaining)


class SseClient(Receiver):
    """The VIP's in-app client. Also keeps each item's `created_at` (stamped by ingest when
    it picked the event up), which splits the latency into its two halves."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__()
        self.created: dict[str, float] = {}
        self.url = f"{base_url}/inapp/stream"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.connected = asyncio.Event()

    async def run(self) -> None:
        async with (
            httpx.AsyncClient(timeout=None) as http,
            http.stream("GET", self.url, headers=self.headers) as response,
        ):
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    arrived = time.time()  # before parsing: JSON decoding is ours, not Clarion's
                    item = json.loads(line[6:])
                    created = datetime.fromisoformat(item["created_at"]).timestamp()
                    self.created[item["notification_id"]] = created
                    self.arrived(item["notification_id"], arrived)
                elif line.startswith(": connected"):
                    self.connected.set()


class RawReceiver(Receiver):
    """A plain consumer, assigned (no group) and positioned at the end before any probe."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        super().__init__()
        self.consumer = consumer

    async def run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=1000)
            arrived = time.time()
            for records in batch.values():
                for record in records:
                    self.arrived(record.value.decode(), arrived)


@contextlib.asynccontextmanager
async def running(task_body: Any) -> AsyncIterator[asyncio.Task[None]]:
    """Run a receiver in the background for the duration of the block."""
    task = asyncio.create_task(task_body)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def raw_receiver(bootstrap: str, topic: str) -> AsyncIterator[RawReceiver]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        receiver = RawReceiver(consumer)
        async with running(receiver.run()):
            yield receiver
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def sse_client(clarion: Clarion) -> AsyncIterator[SseClient]:
    token = issue_token(VIP, TOKEN_SECRET, timedelta(hours=1), datetime.now(UTC))
    client = SseClient(clarion.worker.base_url, token)
    async with running(client.run()) as task:
        connected = asyncio.create_task(client.connected.wait())
        await asyncio.wait([connected, task], timeout=15, return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        if not client.connected.is_set():
            if task.done() and task.exception() is not None:
                raise RuntimeError(f"SSE connection failed: {task.exception()!r}")
            raise RuntimeError("SSE stream did not say ': connected' within 15 s")
        yield client


@contextlib.asynccontextmanager
async def faust_hop(
    bootstrap: str, src: str, dst: str, workdir: Path, linger_ms: float
) -> AsyncIterator[RawReceiver]:
    """The bare Faust hop (benchmarks/faust_hop.py: one agent copying bytes) from `src` to
    `dst` in its own process, and a plain consumer on `dst`; ready once a warm-up record
    has come through."""
    async with (
        faust_hop_process(bootstrap, src, dst, workdir, "latency.faust_hop.log", linger_ms) as (
            proc,
            log_path,
        ),
        raw_receiver(bootstrap, dst) as receiver,
        kafka_producer(bootstrap) as producer,
    ):
        deadline = time.monotonic() + 60
        while "warm-up" not in receiver.received:
            if time.monotonic() > deadline or proc.returncode is not None:
                raise RuntimeError(f"the bare Faust hop never copied a record: {log_path}")
            await producer.send_and_wait(src, b"warm-up")
            await receiver.wait_for(["warm-up"], 2.0)
        yield receiver


# --------------------------------------------------------------------------- senders


async def background(
    producer: AIOKafkaProducer,
    prefix: str,
    users: list[str],
    rate: float,
    rng: random.Random,
    sent: list[int],
) -> None:
    """Paced background traffic until cancelled; `sent[0]` counts what went out."""
    kinds, weights = [k for k, _ in BACKGROUND_MIX], [w for _, w in BACKGROUND_MIX]
    tick = 0.02  # send in small groups: one sleep per event would cost more than the event
    started = time.monotonic()
    while True:
        due = int((time.monotonic() - started) * rate)
        while sent[0] < due:
            kind = rng.choices(kinds, weights)[0]
            recipient, actor = rng.sample(users, 2)
            event = make_event(kind, recipient, actor, rng)
            await producer.send(
                prefix + INGRESS_FOR_TYPE[kind], encode(event), key=recipient.encode()
            )
            sent[0] += 1
        await asyncio.sleep(tick)


async def probe(
    producer: AIOKafkaProducer,
    clarion: Clarion,
    raw_topic: str,
    phase: str,
    count: int,
    rate: float,
    rng: random.Random,
    faust_topic: str | None = None,
    faust_sent: dict[str, float] | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Send `count` critical events to the VIP and as many raw messages, `rate` a second
    (and as many to the bare Faust hop's input, when given, noting them in `faust_sent`).
    Returns the send times by notification id and by raw message id."""
    clarion_sent: dict[str, float] = {}
    raw_sent: dict[str, float] = {}
    started = time.monotonic()
    for i in range(count):
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        kind = CRITICAL_KINDS[i % 2]
        event = make_event(kind, VIP, "bank" if kind == "payment" else "security", rng)
        value = encode(event)  # serialized before the clock starts, like a service would
        clarion_sent[notification_id(event["event_id"], VIP)] = time.time()
        await producer.send(clarion.topic(INGRESS_FOR_TYPE[kind]), value, key=VIP.encode())
        raw_id = f"{phase}-{i}"
        raw_sent[raw_id] = time.time()
        await producer.send(raw_topic, raw_id.encode(), key=VIP.encode())
        if faust_topic is not None and faust_sent is not None:
            hop_id = f"{phase}-faust-{i}"
            faust_sent[hop_id] = time.time()
            await producer.send(faust_topic, hop_id.encode(), key=VIP.encode())
    return clarion_sent, raw_sent


def latencies(sent: dict[str, float], received: dict[str, float]) -> LatencyStats:
    stats = LatencyStats(expected=len(sent))
    stats.samples_ms = [(received[k] - t) * 1000 for k, t in sent.items() if k in received]
    return stats


def hops(sent: dict[str, float], sse: SseClient) -> dict[str, Any]:
    """The two halves of each arrived probe's latency: produce → ingest picks it up
    (Kafka, the worker's fetch loop and its agent queue), and ingest → the SSE client
    (route, the delivery topic, the in-app sink). Same host, same clock."""
    arrived = [k for k in sent if k in sse.received and k in sse.created]
    to_ingest = LatencyStats(expected=len(arrived))
    to_ingest.samples_ms = [(sse.created[k] - sent[k]) * 1000 for k in arrived]
    to_client = LatencyStats(expected=len(arrived))
    to_client.samples_ms = [(sse.received[k] - sse.created[k]) * 1000 for k in arrived]
    return {"produce_to_ingest": to_ingest.summary(), "ingest_to_client": to_client.summary()}


# --------------------------------------------------------------------------- phases


async def run_phase(
    name: str,
    bg_rate: float,
    args: argparse.Namespace,
    clarion: Clarion,
    main: Clarion,
    raw_topic: str,
    sse: SseClient,
    raw: RawReceiver,
    users: list[str],
    rng: random.Random,
    hop: RawReceiver,
    hop_topic: str,
) -> dict[str, Any]:
    # Ingest routes in place, so the background's ingress topics' lag is what is not yet
    # routed; its lanes' topics carry only what another group routes (none here). `main` is
    # the worker that serves the background (the same as `clarion` in the single topology).
    bg_ingress = sorted({main.topic(INGRESS_FOR_TYPE[kind]) for kind, _ in BACKGROUND_MIX})
    bg_lanes = [main.topic(lane_topic(Lane.SOCIAL)), main.topic(lane_topic(Lane.BULK))]
    sent = [0]
    async with (
        kafka_producer(clarion.bootstrap, linger_ms=5) as bg_producer,
        kafka_producer(clarion.bootstrap) as probe_producer,  # aiokafka defaults: no linger
        offsets_reader(clarion.bootstrap) as reader,
        kafka_admin(clarion.bootstrap) as admin,
        contextlib.AsyncExitStack() as stack,
    ):
        if bg_rate > 0:
            await stack.enter_async_context(
                running(background(bg_producer, clarion.prefix, users, bg_rate, rng, sent))
            )
            await asyncio.sleep(args.warmup)  # let the worker reach its steady state first
        bg_before = sent[0] - await ingest_lag(admin, reader, main.app_id, main.prefix, bg_ingress)
        sent_before, t0 = sent[0], time.monotonic()
        cpu_before, main_cpu_before = clarion.cpu_seconds(), main.cpu_seconds()
        hop_sent: dict[str, float] = {}
        clarion_sent, raw_sent = await probe(
            probe_producer, clarion, raw_topic, name, args.critical, args.rate, rng,
            faust_topic=hop_topic, faust_sent=hop_sent,
        )  # fmt: skip
        probing_s = time.monotonic() - t0
        cpu_after, main_cpu_after = clarion.cpu_seconds(), main.cpu_seconds()
        # Background produced vs. what the worker has routed (ingest's committed offsets
        # on the ingress topics, so up to its 1 s commit interval behind): a gap much
        # larger than that means the worker cannot keep up, and the "steady" load is really
        # a growing backlog.
        bg_sent = sent[0] - sent_before
        ingest_backlog = await ingest_lag(admin, reader, main.app_id, main.prefix, bg_ingress)
        bg_done = sent[0] - ingest_backlog - bg_before
        route_backlog = await group_lag(admin, reader, main.app_id, bg_lanes)
        await sse.wait_for(clarion_sent, GRACE_S)
        await raw.wait_for(raw_sent, 1.0)
        await hop.wait_for(hop_sent, 1.0)
    result: dict[str, Any] = {
        "background_rate": bg_rate,
        "clarion": latencies(clarion_sent, sse.received).summary(),
        "clarion_hops": hops(clarion_sent, sse),
        "raw": latencies(raw_sent, raw.received).summary(),
        "faust_hop": latencies(hop_sent, hop.received).summary(),
    }
    result["ratio_p50"] = ratio(result["clarion"]["p50_ms"], result["raw"]["p50_ms"])
    result["ratio_p99"] = ratio(result["clarion"]["p99_ms"], result["raw"]["p99_ms"])
    result["faust_ratio_p50"] = ratio(result["clarion"]["p50_ms"], result["faust_hop"]["p50_ms"])
    result["faust_ratio_p99"] = ratio(result["clarion"]["p99_ms"], result["faust_hop"]["p99_ms"])
    if bg_rate > 0:
        result["background_sent_per_s"] = round(bg_sent / probing_s, 1)
        result["background_ingested_per_s"] = round(bg_done / probing_s, 1)
        result["background_ingest_backlog_at_end"] = ingest_backlog
        result["background_route_backlog_at_end"] = route_backlog
        # If not, the latencies grow with the phase's length: they measure a backlog.
        # Committed offsets trail by up to the commit interval: allow that much.
        result["background_kept_up"] = (
            ingest_backlog <= (1 + COMMIT_SLACK_S) * bg_rate
            and route_backlog <= COMMIT_SLACK_S * bg_rate
        )
    if cpu_before is not None and cpu_after is not None:
        result["worker_cpu_utilisation"] = round((cpu_after - cpu_before) / probing_s, 2)
    if main is not clarion and main_cpu_before is not None and main_cpu_after is not None:
        result["main_worker_cpu_utilisation"] = round(
            (main_cpu_after - main_cpu_before) / probing_s, 2
        )
    halves = result["clarion_hops"]
    log.info(
        "%s: clarion p50 %s ms p99 %s ms (%d missing; to ingest p50 %s p99 %s, ingest to "
        "client p50 %s p99 %s); raw p50 %s ms p99 %s ms; bare Faust hop p50 %s ms p99 %s ms",
        name,
        result["clarion"]["p50_ms"],
        result["clarion"]["p99_ms"],
        result["clarion"]["missing"],
        halves["produce_to_ingest"]["p50_ms"],
        halves["produce_to_ingest"]["p99_ms"],
        halves["ingest_to_client"]["p50_ms"],
        halves["ingest_to_client"]["p99_ms"],
        result["raw"]["p50_ms"],
        result["raw"]["p99_ms"],
        result["faust_hop"]["p50_ms"],
        result["faust_hop"]["p99_ms"],
    )
    return result


async def benchmark(args: argparse.Namespace, bootstrap: str, workdir: Path) -> Report:
    rng = random.Random(args.seed)
    users = user_ids(args.users)
    raw_prefix = f"b{run_tag()}."
    raw_topic = raw_prefix + "lat.raw"
    hop_in, hop_out = raw_prefix + "lat.faust.in", raw_prefix + "lat.faust.out"
    await ensure_topics(
        bootstrap,
        [TopicSpec("lat.raw"), TopicSpec("lat.faust.in"), TopicSpec("lat.faust.out")],
        prefix=raw_prefix,
        partitions=args.partitions,
        replication_factor=1,
    )
    phases: dict[str, dict[str, Any]] = {}
    async with contextlib.AsyncExitStack() as stack:
        if args.topology == "split":
            # Each worker its own app id (consumer group, tables) and work dir, same topics.
            tag = run_tag()
            prefix = f"b{tag}."
            (workdir / "critical").mkdir()
            (workdir / "main").mkdir()
            clarion = await stack.enter_async_context(clarion_worker(
                bootstrap, workdir / "critical", args.partitions, "latency-split-critical",
                lanes=Lane.CRITICAL.value, prefix=prefix, app_id=f"clarion-bench-{tag}-critical",
            ))  # fmt: skip
            main = await stack.enter_async_context(clarion_worker(
                bootstrap, workdir / "main", args.partitions, "latency-split-main",
                lanes="high,social,bulk", prefix=prefix, app_id=f"clarion-bench-{tag}-main",
            ))  # fmt: skip
        else:
            clarion = main = await stack.enter_async_context(
                clarion_worker(bootstrap, workdir, args.partitions, "latency")
            )
        profiles = make_profiles([VIP, *users], rng)
        await seed_profiles(clarion, profiles, timeout_s=30)
        if main is not clarion:  # one seeding, applied by each worker to its own tables
            await wait_profiles_applied(main, len(profiles), timeout_s=30)
        # The bare Faust hop lingers as long as the worker that serves the probes does.
        probe_lanes = Lane.CRITICAL.value if args.topology == "split" else "all"
        linger_ms = Settings(lanes=probe_lanes).producer_linger_s * 1000
        async with (
            sse_client(clarion) as sse,
            raw_receiver(bootstrap, raw_topic) as raw,
            faust_hop(bootstrap, hop_in, hop_out, workdir, linger_ms) as hop,
        ):
            for name, bg_rate in (("idle", 0.0), ("loaded", args.background_rate)):
                log.info(
                    "phase %s (%s): %d critical events at %g/s, background %g events/s",
                    name,
                    args.topology,
                    args.critical,
                    args.rate,
                    bg_rate,
                )
                phases[name] = await run_phase(
                    name, bg_rate, args, clarion, main, raw_topic, sse, raw, users, rng,
                    hop, hop_in,
                )  # fmt: skip
        async with offsets_reader(bootstrap) as reader:
            receipts = await record_count(reader, [clarion.topic(RECEIPTS)])

    figures: dict[str, Any] = {
        "benchmark": "latency",
        "topology": args.topology,
        "critical": args.critical,
        "rate_per_s": args.rate,
        "background_rate": args.background_rate,
        "users": args.users,
        "partitions": args.partitions,
        **phases,
        "receipts_total": receipts,
    }
    return Report(figures, _markdown(args, phases))


_TOPOLOGY = {
    "single": "one worker serving every lane",
    "split": "split topology (a CLARION_LANES=critical worker serving the SSE client, and a "
    "high,social,bulk worker taking the background, each its own consumer group)",
}


def _markdown(args: argparse.Namespace, phases: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, phase in phases.items():
        sides = [(side, phase[side]) for side in ("clarion", "faust_hop", "raw")]
        sides[1:1] = [(f"clarion: {half}", s) for half, s in phase["clarion_hops"].items()]
        for side, s in sides:
            rows.append(
                (
                    name,
                    side,
                    s["n"],
                    s["missing"],
                    s["p50_ms"],
                    s["p90_ms"],
                    s["p99_ms"],
                    s["max_ms"],
                )
            )
    ratios = [
        (
            name,
            p["ratio_p50"],
            p["ratio_p99"],
            p["faust_ratio_p50"],
            p["faust_ratio_p99"],
            p.get("worker_cpu_utilisation", "-"),
            p.get("main_worker_cpu_utilisation", "-"),
            p.get("background_ingested_per_s", "-"),
            p.get("background_ingest_backlog_at_end", "-"),
            p.get("background_route_backlog_at_end", "-"),
            p.get("background_kept_up", "-"),
        )
        for name, p in phases.items()
    ]
    return "\n\n".join([
        "# Latency: critical event → in-app SSE client vs raw Kafka produce → consume",
        f"{args.critical} critical events (payment / security alert) to one user at "
        f"{args.rate:g}/s per phase; background load {args.background_rate:g} events/s of the "
        f"social/bulk mix to {args.users} other users in the loaded phase; {args.partitions} "
        f"partitions, {_TOPOLOGY[args.topology]}, one local broker. Raw: the same count and "
        "pacing, produced to a plain topic and read by an assigned consumer. Bare Faust hop: "
        "the same again through benchmarks/faust_hop.py (one agent copying bytes, the "
        "worker's producer linger) and read by an assigned consumer. The critical path is two "
        "Faust consumes (ingest, the in-app sink) and one produce between them. Clarion's two "
        "halves split at `created_at`, stamped when ingest picks the event up.",
        markdown_table(("phase", "path", "n", "missing", "p50 ms", "p90 ms", "p99 ms", "max ms"),
                       rows),
        markdown_table(("phase", "p50 ÷ raw", "p99 ÷ raw", "p50 ÷ bare Faust hop",
                        "p99 ÷ bare Faust hop", "worker CPU", "main worker CPU",
                        "background ingested/s", "ingest backlog at end",
                        "route backlog at end", "worker kept up"), ratios),
        "Latency is time.time() just before the produce call to time.time() when the SSE "
        "`data:` line (or the raw record) arrives; missing = not received within "
        f"{GRACE_S:.0f} s of the last send, and left out of the percentiles. Route backlog "
        "comes from committed offsets (Faust commits every 2.8 s), so a few seconds' worth "
        "of input there is normal.",
    ])  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--critical", type=int, default=200, help="critical events per phase")
    parser.add_argument("--rate", type=float, default=10.0, help="critical events per second")
    parser.add_argument(
        "--background-rate",
        type=float,
        default=300.0,
        help="background events per second in the loaded phase",
    )
    parser.add_argument("--users", type=int, default=1_000, help="background recipients")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of background load before the loaded phase's probes",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--topology", choices=["single", "split"], default="single")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="give up (and stop everything) after this many seconds "
        "(default: 90 + twice the probing time + warm-up + grace)",
    )
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = 90 + 2 * (args.critical / args.rate + GRACE_S) + args.warmup
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark("latency", lambda b, w: benchmark(args, b, w), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
