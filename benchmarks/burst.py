"""Burst isolation: a bulk burst (marketing events, produced as fast as the producer can)
while critical events (payment / security alert) flow to one user at a steady rate. Critical
latency, produce → the recipient's in-app SSE client, p50/p90/p99/max, without and with the
burst, side by side in one run, for two topologies on one broker:

  split   two workers on the same topics: one serving only the critical lane
          (CLARION_LANES=critical), one the rest (high,social,bulk), each its own app id
  single  one worker serving every lane (the baseline: one consumer fetch loop for all)

Goal: critical p99 with the burst within 2x of p99 without it.

    python -m benchmarks.burst [--burst 1000000] [--critical-rate 10] [--phase-seconds 30]
                               [--topology split|single|both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Clarion,
    Report,
    clarion_worker,
    cpu_seconds,
    encode,
    group_lag,
    ingest_lag,
    kafka_admin,
    kafka_producer,
    log,
    make_profiles,
    markdown_table,
    offsets_reader,
    ratio,
    run_benchmark,
    run_tag,
    seed_profiles,
    wait_profiles_applied,
)
from benchmarks.latency import (
    VIP,
    RawReceiver,
    SseClient,
    latencies,
    probe,
    raw_receiver,
    sse_client,
)
from devenv.traffic import make_event, user_ids
from schemas.common import Lane
from streams.admin import ensure_topics
from streams.catalog import INGRESS_FOR_TYPE, TopicSpec, lane_topic

GOAL_RATIO = 2.0  # burst p99 / quiet p99
BURST_STARTED = 10_000  # burst events acknowledged before the burst phase's probes start
MAIN_LANES = "high,social,bulk"
BURST_TOPIC = INGRESS_FOR_TYPE["marketing"]


# --------------------------------------------------------------------------- burst producer
#
# In its own process: in this one, a producer that never has to wait would hold the event
# loop for milliseconds at a time, and those milliseconds would show up as critical latency
# (the probe sends and the SSE arrival times are taken on this loop).


def _burst_process(
    bootstrap: str,
    topic: str,
    count: int,
    users: int,
    seed: int,
    acked: ctypes.c_longlong,
    acked_after_s: ctypes.c_double,
    stop: MpEvent,
) -> None:
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole process group
        asyncio.run(
            _produce_burst(bootstrap, topic, count, users, seed, acked, acked_after_s, stop)
        )


async def _produce_burst(
    bootstrap: str,
    topic: str,
    count: int,
    users: int,
    seed: int,
    acked: ctypes.c_longlong,
    acked_after_s: ctypes.c_double,
    stop: MpEvent,
) -> None:
    """Produce up to `count` marketing events; `acked` counts the acknowledged ones and
    `acked_after_s` is when the last of them was acknowledged (seconds since the start)."""
    rng = random.Random(seed)
    recipients = user_ids(users)
    parent = os.getppid()
    done = 0
    started = time.monotonic()

    def on_ack(future: asyncio.Future[Any]) -> None:
        nonlocal done
        if not future.cancelled() and future.exception() is None:
            done += 1
            acked.value = done  # one writer: no lock needed
            acked_after_s.value = time.monotonic() - started

    # Bigger batches than the default 16 KB: this producer is about volume.
    async with kafka_producer(bootstrap, linger_ms=20, max_batch_size=256 * 1024) as producer:
        for i in range(count):
            # Told to stop, or the benchmark is gone (killed without a chance to stop us).
            if i % 1000 == 0 and (stop.is_set() or os.getppid() != parent):
                break
            recipient = rng.choice(recipients)
            event = make_event("marketing", recipient, "brand", rng)
            future = await producer.send(topic, encode(event), key=recipient.encode())
            future.add_done_callback(on_ack)
        # Leaving the block flushes what is buffered: those count as produced too.


class Burst:
    """The burst producer process: start, watch its acknowledged count, stop."""

    def __init__(self, bootstrap: str, topic: str, count: int, users: int, seed: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process running a loop
        self.count = count
        self.acked = ctx.RawValue(ctypes.c_longlong, 0)
        self.acked_after_s = ctx.RawValue(ctypes.c_double, 0.0)
        self.stop_event = ctx.Event()
        self.process = ctx.Process(
            target=_burst_process,
            name="burst-producer",
            daemon=True,
            args=(
                bootstrap,
                topic,
                count,
                users,
                seed,
                self.acked,
                self.acked_after_s,
                self.stop_event,
            ),
        )

    @property
    def produced(self) -> int:
        return int(self.acked.value)

    @property
    def rate(self) -> float | None:
        """Events acknowledged per second since the burst began."""
        after = float(self.acked_after_s.value)
        return round(self.produced / after, 1) if after > 0 else None

    @property
    def running(self) -> bool:
        return self.process.is_alive()

    def cpu_seconds(self) -> float | None:
        pid = self.process.pid
        return None if pid is None else cpu_seconds(pid)

    async def started(self, at_least: int, timeout_s: float = 60.0) -> None:
        """Wait until `at_least` events are acknowledged (or the burst ended)."""
        deadline = time.monotonic() + timeout_s
        while self.produced < at_least and self.running:
            if time.monotonic() > deadline:
                raise RuntimeError(f"burst producer acked only {self.produced} in {timeout_s} s")
            await asyncio.sleep(0.05)
        if not self.running and self.process.exitcode not in (0, None):
            raise RuntimeError(f"burst producer failed (exit code {self.process.exitcode})")

    async def stop(self) -> None:
        """Stop producing, let the producer flush what it buffered, and wait for the exit."""
        self.stop_event.set()
        await asyncio.to_thread(self.process.join, 30)
        if self.process.is_alive():
            log.warning("burst producer did not stop within 30 s: killing it")
            self.process.kill()
            await asyncio.to_thread(self.process.join, 10)


@contextlib.asynccontextmanager
async def burst_running(
    bootstrap: str, topic: str, count: int, users: int, seed: int
) -> AsyncIterator[Burst]:
    burst = Burst(bootstrap, topic, count, users, seed)
    burst.process.start()
    try:
        yield burst
    finally:
        # Shielded like the worker stop: a second Ctrl-C must not leave the process behind.
        await asyncio.shield(burst.stop())


# --------------------------------------------------------------------------- topologies


@dataclass
class Topology:
    name: str
    critical: Clarion  # runs the critical lane: serves the VIP's SSE stream
    bulk: Clarion  # runs the bulk lane: takes the burst
    workers: dict[str, Clarion]  # by role, for CPU figures
    raw_topic: str


@contextlib.asynccontextmanager
async def topology(
    name: str, bootstrap: str, workdir: Path, partitions: int
) -> AsyncIterator[Topology]:
    """Fresh topics (own prefix) and the workers of one topology, stopped on exit."""
    tag = run_tag()
    prefix = f"b{tag}."
    await ensure_topics(
        bootstrap,
        [TopicSpec("burst.raw")],
        prefix=prefix,
        partitions=partitions,
        replication_factor=1,
    )
    raw_topic = prefix + "burst.raw"
    dirs = {role: workdir / f"{tag}-{role}" for role in ("critical", "main", "all")}
    for path in dirs.values():
        path.mkdir(parents=True)
    if name == "split":
        # Each worker its own work dir: RocksDB tables and the outbox are per app.
        async with (
            clarion_worker(
                bootstrap,
                dirs["critical"],
                partitions,
                "burst-split-critical",
                lanes=Lane.CRITICAL.value,
                prefix=prefix,
                app_id=f"clarion-bench-{tag}-critical",
            ) as critical,
            clarion_worker(
                bootstrap,
                dirs["main"],
                partitions,
                "burst-split-main",
                lanes=MAIN_LANES,
                prefix=prefix,
                app_id=f"clarion-bench-{tag}-main",
            ) as main,
        ):
            yield Topology(name, critical, main, {"critical": critical, "main": main}, raw_topic)
    else:
        async with clarion_worker(
            bootstrap, dirs["all"], partitions, "burst-single", prefix=prefix
        ) as worker:
            yield Topology(name, worker, worker, {"all": worker}, raw_topic)


# --------------------------------------------------------------------------- phases


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuWatch:
    """CPU use over one window: each worker, the burst producer, this process, the machine."""

    def __init__(self, topo: Topology, burst: Burst | None) -> None:
        self.sources: dict[str, Any] = {role: c.cpu_seconds for role, c in topo.workers.items()}
        if burst is not None:
            self.sources["burst_producer"] = burst.cpu_seconds
        self.sources["benchmark"] = lambda: sum(os.times()[:2])
        self.sources["machine"] = machine_busy_seconds
        self.start = {name: read() for name, read in self.sources.items()}
        self.t0 = time.monotonic()

    def utilisation(self) -> dict[str, float | None]:
        """Cores busy on average (1.0 = one core), per source."""
        elapsed = time.monotonic() - self.t0
        out: dict[str, float | None] = {}
        for name, read in self.sources.items():
            before, after = self.start[name], read()
            out[name] = (
                None if before is None or after is None else round((after - before) / elapsed, 2)
            )
        return out


async def run_phase(
    phase: str,
    topo: Topology,
    args: argparse.Namespace,
    sse: SseClient,
    raw: RawReceiver,
    rng: random.Random,
) -> dict[str, Any]:
    count = round(args.critical_rate * args.phase_seconds)
    bulk_lane = topo.bulk.topic(lane_topic(Lane.BULK))
    burst_topic = topo.bulk.topic(BURST_TOPIC)
    bootstrap = topo.critical.bootstrap
    result: dict[str, Any] = {}
    async with (
        kafka_producer(bootstrap) as probe_producer,  # aiokafka defaults: no linger
        offsets_reader(bootstrap) as reader,
        kafka_admin(bootstrap) as admin,
        contextlib.AsyncExitStack() as stack,
    ):
        burst: Burst | None = None
        if phase == "burst":
            burst = await stack.enter_async_context(
                burst_running(bootstrap, burst_topic, args.burst, args.users, args.seed)
            )
            await burst.started(min(BURST_STARTED, args.burst))
            log.info("burst under way (%d acked): probing", burst.produced)
        produced_before = burst.produced if burst else 0
        # Ingest routes the bulk lane in place: what its group has committed of the burst's
        # topic is what it has ingested and routed.
        bulk_before = produced_before - await ingest_lag(
            admin, reader, topo.bulk.app_id, topo.bulk.prefix, [burst_topic]
        )
        cpu = CpuWatch(topo, burst)
        t0 = time.monotonic()
        clarion_sent, raw_sent = await probe(
            probe_producer, topo.critical, topo.raw_topic, phase, count, args.critical_rate, rng
        )
        probing_s = time.monotonic() - t0
        result["probing_s"] = round(probing_s, 1)
        result["cpu_cores"] = cpu.utilisation()
        if burst is not None:
            # Where the burst stands at the end of the phase: produced (acked by the broker),
            # ingested and routed (in place) by the bulk worker, and still pending there
            # (committed offsets of its group: up to Faust's 2.8 s commit interval behind).
            produced_end = burst.produced
            ingest_backlog = await ingest_lag(
                admin, reader, topo.bulk.app_id, topo.bulk.prefix, [burst_topic]
            )
            bulk_end = produced_end - ingest_backlog
            finished = not burst.running
            result["burst"] = {
                "produced_at_phase_end": produced_end,
                "produced_during_probes_per_s": round(
                    (produced_end - produced_before) / probing_s, 1
                ),
                "finished_before_phase_end": finished,
                "bulk_ingested_at_phase_end": bulk_end,
                "bulk_ingested_per_s": round((bulk_end - bulk_before) / probing_s, 1),
                "ingest_backlog_at_phase_end": ingest_backlog,
                "route_backlog_at_phase_end": await group_lag(
                    admin, reader, topo.bulk.app_id, [bulk_lane]
                ),
            }
            await burst.stop()
            result["burst"]["produced_total"] = burst.produced
            result["burst"]["producer_rate_per_s"] = burst.rate
        await sse.wait_for(clarion_sent, args.grace)
        await raw.wait_for(raw_sent, 1.0)
    result["clarion"] = latencies(clarion_sent, sse.received).summary()
    result["raw"] = latencies(raw_sent, raw.received).summary()
    c, r = result["clarion"], result["raw"]
    log.info(
        "%s/%s: critical p50 %s ms p99 %s ms (%d missing); raw p50 %s ms p99 %s ms; CPU %s",
        topo.name,
        phase,
        c["p50_ms"],
        c["p99_ms"],
        c["missing"],
        r["p50_ms"],
        r["p99_ms"],
        result["cpu_cores"],
    )
    if "burst" in result:
        log.info("%s/burst: %s", topo.name, result["burst"])
    return result


async def run_topology(
    name: str,
    args: argparse.Namespace,
    bootstrap: str,
    workdir: Path,
    rng: random.Random,
) -> dict[str, Any]:
    users = user_ids(args.users)
    profiles = make_profiles([VIP, *users], rng)
    phases: dict[str, Any] = {}
    async with topology(name, bootstrap, workdir, args.partitions) as topo:
        # One seeding, applied by every worker (each keeps its own tables).
        await seed_profiles(topo.critical, profiles, timeout_s=30)
        for worker in topo.workers.values():
            if worker is not topo.critical:
                await wait_profiles_applied(worker, len(profiles), timeout_s=30)
        async with sse_client(topo.critical) as sse, raw_receiver(bootstrap, topo.raw_topic) as raw:
            for phase in ("quiet", "burst"):
                log.info(
                    "%s/%s: %g critical events/s for %g s%s",
                    name,
                    phase,
                    args.critical_rate,
                    args.phase_seconds,
                    f", burst of up to {args.burst} marketing events" if phase == "burst" else "",
                )
                phases[phase] = await run_phase(phase, topo, args, sse, raw, rng)
    quiet_p99 = phases["quiet"]["clarion"]["p99_ms"]
    burst_p99 = phases["burst"]["clarion"]["p99_ms"]
    p99_ratio = ratio(burst_p99, quiet_p99)
    return {
        "workers": list(topo.workers),
        **phases,
        "p99_ratio": p99_ratio,
        # Probes that never arrived are not in the percentiles: they fail the goal outright.
        "within_goal": p99_ratio is not None
        and p99_ratio <= GOAL_RATIO
        and phases["burst"]["clarion"]["missing"] == 0,
    }


async def benchmark(args: argparse.Namespace, bootstrap: str, workdir: Path) -> Report:
    rng = random.Random(args.seed)
    names = ["split", "single"] if args.topology == "both" else [args.topology]
    results = {name: await run_topology(name, args, bootstrap, workdir, rng) for name in names}
    figures: dict[str, Any] = {
        "benchmark": "burst",
        "burst": args.burst,
        "critical_rate_per_s": args.critical_rate,
        "phase_seconds": args.phase_seconds,
        "users": args.users,
        "partitions": args.partitions,
        "goal_p99_ratio": GOAL_RATIO,
        **results,
    }
    return Report(figures, _markdown(args, results))


def _markdown(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> str:
    count = round(args.critical_rate * args.phase_seconds)
    parts = [
        "# Burst isolation: critical latency with and without a bulk burst",
        f"Per phase, {count} critical events (payment / security alert) to one user at "
        f"{args.critical_rate:g}/s for {args.phase_seconds:g} s; in the burst phase a burst "
        f"of up to {args.burst} marketing events to {args.users} users is produced as fast as "
        "one producer process can, starting before the probes and stopped after them. "
        f"{args.partitions} partitions, one local broker, {os.cpu_count()} cores. Topologies: "
        "**split** = one worker with CLARION_LANES=critical (serves the SSE client) and one "
        f"with {MAIN_LANES}, own app ids, same topics; **single** = one worker, all lanes. "
        f"Goal: burst p99 ≤ {GOAL_RATIO:g}x quiet p99 (and nothing missing).",
    ]
    summary = []
    for name, res in results.items():
        q, b = res["quiet"]["clarion"], res["burst"]["clarion"]
        summary.append(
            (
                name,
                q["p50_ms"],
                q["p99_ms"],
                b["p50_ms"],
                b["p99_ms"],
                b["missing"],
                res["p99_ratio"],
                "yes" if res["within_goal"] else "no",
            )
        )
    parts.append(
        markdown_table(
            (
                "topology",
                "quiet p50 ms",
                "quiet p99 ms",
                "burst p50 ms",
                "burst p99 ms",
                "burst missing",
                "p99 ratio",
                f"within {GOAL_RATIO:g}x",
            ),
            summary,
        )
    )
    for name, res in results.items():
        rows = []
        for phase in ("quiet", "burst"):
            for side in ("clarion", "raw"):
                s = res[phase][side]
                rows.append(
                    (
                        phase,
                        side,
                        s["n"],
                        s["missing"],
                        s["p50_ms"],
                        s["p90_ms"],
                        s["p99_ms"],
                        s["max_ms"],
                    )
                )
        parts.append(f"## {name}: " + ", ".join(f"{role} worker" for role in res["workers"]))
        parts.append(
            markdown_table(
                ("phase", "path", "n", "missing", "p50 ms", "p90 ms", "p99 ms", "max ms"), rows
            )
        )
        sources = list(res["burst"]["cpu_cores"])
        parts.append(
            markdown_table(
                ("phase", *(f"CPU {s}" for s in sources)),
                [
                    (phase, *(res[phase]["cpu_cores"].get(s, "-") for s in sources))
                    for phase in ("quiet", "burst")
                ],
            )
        )
        bu = res["burst"]["burst"]
        parts.append(
            markdown_table(
                (
                    "burst produced by phase end",
                    "produced in total",
                    "producer rate/s",
                    "bulk ingested by phase end",
                    "bulk ingested/s",
                    "ingest backlog at end",
                    "route backlog at end",
                ),
                [
                    (
                        bu["produced_at_phase_end"],
                        bu["produced_total"],
                        bu["producer_rate_per_s"],
                        bu["bulk_ingested_at_phase_end"],
                        bu["bulk_ingested_per_s"],
                        bu["ingest_backlog_at_phase_end"],
                        bu["route_backlog_at_phase_end"],
                    )
                ],
            )
        )
    parts.append(
        "Latency is time.time() just before the produce call to time.time() when the SSE "
        "`data:` line arrives (raw: the same pacing to a plain topic, read by an assigned "
        f"consumer: the broker and this machine's share). Missing = not received within "
        f"{args.grace:g} s of the last send, left out of the percentiles. CPU is in cores "
        "(1.0 = one core busy) over the probing window; 'machine' counts every process. "
        "Producer rate = burst events acknowledged per second from the burst's start to its "
        "last ack. Bulk ingested = the burst's records the bulk worker's group has committed "
        "(ingested and routed in place); the backlogs (events.marketing at ingest, "
        "notifications.bulk at route: lane records, none when one group serves the lane) "
        "come from the bulk worker's committed offsets (Faust commits every 2.8 s)."
    )
    return "\n\n".join(parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.burst",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=1_000_000,
        help="marketing events in the burst (stopped at the phase's end)",
    )
    parser.add_argument("--users", type=int, default=2_000, help="burst recipients")
    parser.add_argument(
        "--critical-rate", type=float, default=10.0, help="critical events per second"
    )
    parser.add_argument("--phase-seconds", type=float, default=30.0, help="probing time per phase")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--topology", choices=["split", "single", "both"], default="both")
    parser.add_argument(
        "--grace",
        type=float,
        default=15.0,
        help="seconds to wait for late critical events after a phase",
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="give up (and stop everything) after this many seconds "
        "(default: 60 + per topology 150 + both phases and graces)",
    )
    args = parser.parse_args(argv)
    if args.timeout is None:
        topologies = 2 if args.topology == "both" else 1
        args.timeout = 60 + topologies * (150 + 2 * (args.phase_seconds + args.grace))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark("burst", lambda b, w: benchmark(args, b, w), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
