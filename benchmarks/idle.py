"""Idle cost: the CPU a worker uses with no traffic at all, next to a bare Faust app (one
agent, benchmarks/faust_hop.py) and a raw aiokafka consumer (one group member polling one
topic) idling on the same broker in the same run.

A worker that does nothing still runs its timers, its topic loaders' fetch loops (one
aiokafka consumer per loader: the ingest lanes, the in-app and outbox sinks and every
configured provider's (channel, lane) sink), Faust's consumer thread and the digest tick.
That is paid by every worker of a deployment all the time, and on a shared machine it is
taken from the busy ones. The worker runs with every provider configured against the
sandbox (as the delivery benchmark does), so every provider sink's loader exists.

    python -m benchmarks.idle [--seconds 30] [--settle 15] [--partitions 4]

Reported per process: cores (CPU seconds / wall seconds) over the same `--seconds`, after
`--settle` seconds from the moment all three were ready; the ratio Clarion ÷ bare Faust.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from benchmarks.common import (
    OUT_DIR,
    Report,
    clarion_worker,
    cpu_seconds,
    faust_hop_process,
    markdown_table,
    ratio,
    run_benchmark,
    run_tag,
    stop_subprocess,
)
from benchmarks.delivery import sandbox_process
from devenv.sandbox.env import provider_env
from streams.admin import ensure_topics
from streams.catalog import TopicSpec

RAW_CONSUMER = "raw-consumer"


async def _raw_consumer_main() -> None:
    """The raw aiokafka baseline, run as `python -m benchmarks.idle raw-consumer`: one group
    member subscribed to one topic, polling as a loader does (200 ms), until SIGTERM."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        os.environ["IDLE_TOPIC"],
        bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        group_id=os.environ["IDLE_GROUP"],
        enable_auto_commit=False,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await consumer.start()
    try:
        print("ready", flush=True)
        while not stop.is_set():
            await consumer.getmany(timeout_ms=200)
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def raw_consumer_process(
    bootstrap: str, topic: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "IDLE_TOPIC": topic,
        "IDLE_GROUP": f"idle-raw-{run_tag()}",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.idle", RAW_CONSUMER,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError("the raw aiokafka consumer did not start")
        yield proc
    finally:
        await stop_subprocess(proc)


async def body(bootstrap: str, workdir: Path, args: argparse.Namespace) -> Report:
    tag = run_tag()
    prefix = f"b{tag}."
    await ensure_topics(
        bootstrap, [TopicSpec("idle.in"), TopicSpec("idle.out")], prefix=prefix,
        partitions=args.partitions, replication_factor=1,
    )  # fmt: skip
    src, dst = f"{prefix}idle.in", f"{prefix}idle.out"
    with sandbox_process() as sandbox:
        env = provider_env(sandbox.urls, workdir / "providers")
        async with (
            clarion_worker(
                bootstrap, workdir / "clarion", args.partitions, "idle", extra_env=env
            ) as clarion,
            faust_hop_process(bootstrap, src, dst, workdir, "idle.faust_hop.log") as (hop, _l),
            raw_consumer_process(bootstrap, src) as raw,
        ):
            await asyncio.sleep(args.settle)  # joins, rebalances and first fetches are over
            procs = {"clarion": clarion.worker.proc, "faust": hop, "raw": raw}
            started = time.monotonic()
            before = {name: cpu_seconds(p.pid) for name, p in procs.items() if p is not None}
            sandbox_before = sandbox.cpu_seconds()
            await asyncio.sleep(args.seconds)
            after = {name: cpu_seconds(p.pid) for name, p in procs.items() if p is not None}
            wall = time.monotonic() - started
            sandbox_cores = _cores(sandbox_before, sandbox.cpu_seconds(), wall)
    cores = {name: _cores(before.get(name), after.get(name), wall) for name in procs}
    figures = {
        "seconds": round(wall, 1),
        "partitions": args.partitions,
        "cores": cores,
        "sandbox_cores": sandbox_cores,
        "clarion_per_bare_faust": ratio(cores["clarion"], cores["faust"]),
        "clarion_per_raw_aiokafka": ratio(cores["clarion"], cores["raw"]),
    }
    rows = [
        ("Clarion worker (every provider configured)", cores["clarion"], 1.0),
        ("bare Faust app (one agent)", cores["faust"], ratio(cores["faust"], cores["clarion"])),
        ("raw aiokafka consumer", cores["raw"], ratio(cores["raw"], cores["clarion"])),
    ]
    markdown = "\n".join(
        [
            "# Idle cost (`python -m benchmarks.idle`)",
            "",
            f"No traffic; {args.partitions} partitions; CPU over {wall:.0f} s after a "
            f"{args.settle:.0f} s settle. Clarion ÷ bare Faust: "
            f"{figures['clarion_per_bare_faust']}; sandbox {sandbox_cores} cores.",
            "",
            markdown_table(("process", "cores", "÷ Clarion"), rows),
        ]
    )
    return Report(figures, markdown)


def _cores(before: float | None, after: float | None, wall: float) -> float | None:
    if before is None or after is None or wall <= 0:
        return None
    return round((after - before) / wall, 4)


def main() -> int:
    if sys.argv[1:2] == [RAW_CONSUMER]:
        asyncio.run(_raw_consumer_main())
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    return run_benchmark("idle", lambda b, w: body(b, w, args), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
