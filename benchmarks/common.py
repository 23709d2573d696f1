"""Shared pieces of the benchmarks: the run harness (real broker, time limit, clean stop on
any exit), a Clarion worker subprocess, small Kafka helpers, percentiles, and the outputs
(one JSON line on stdout, a markdown report in benchmarks/out/)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from devenv.kafka import kafka_broker
from devenv.traffic import contacts_for, preferences_for
from devenv.worker import WorkerProcess, worker_env
from logic.topic_names import ingest_group
from streams.admin import ensure_topics
from streams.catalog import CONTACTS, INGRESS_LANE, PREFERENCES, all_topics

OUT_DIR = Path(__file__).resolve().parent / "out"
TOKEN_SECRET = "benchmark-only-secret-0123456789abcdef"
log = logging.getLogger("benchmarks")


# --------------------------------------------------------------------------- harness


@dataclass
class Report:
    """What a benchmark body returns: figures for the JSON line, markdown for the file."""

    figures: dict[str, Any]
    markdown: str


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM/SIGHUP/SIGALRM take the Ctrl-C path, so every `finally` (worker, broker) runs.
    raise KeyboardInterrupt


def run_benchmark(
    name: str, body: Callable[[str, Path], Awaitable[Report]], timeout_s: float
) -> int:
    """Start a broker, run `body(bootstrap, workdir)` within `timeout_s`, print its figures
    as one JSON line and write benchmarks/out/<name>.md. Returns the exit code."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    # aiokafka reports every group join and coordinator change at INFO: noise here.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per /health poll
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, _interrupt)
    # Backstop in case cleanup itself hangs: the asyncio timeout below is the real limit.
    signal.alarm(int(timeout_s) + 90)
    started = time.monotonic()
    try:
        with (
            kafka_broker() as bootstrap,
            tempfile.TemporaryDirectory(prefix=f"clarion-bench-{name}-") as tmp,
        ):
            log.info("broker at %s", bootstrap)
            report = asyncio.run(_bounded(body(bootstrap, Path(tmp)), timeout_s))
    except KeyboardInterrupt:
        log.error("interrupted; everything started was stopped")
        return 130
    except TimeoutError:
        log.error("gave up after %.0f s (raise --timeout or lower the sizes)", timeout_s)
        return 2
    finally:
        signal.alarm(0)
    run_time = round(time.monotonic() - started, 1)
    report.figures["run_time_s"] = run_time
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.md"
    path.write_text(report.markdown.rstrip() + f"\n\nTotal run time: {run_time} s.\n")
    log.info("report written to %s", path)
    print(json.dumps(report.figures), flush=True)
    return 0


async def _bounded(body: Awaitable[Report], timeout_s: float) -> Report:
    return await asyncio.wait_for(body, timeout_s)


def run_tag() -> str:
    """A short random tag: topic prefixes and group ids of one run never collide."""
    return uuid.uuid4().hex[:8]


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time a process has used (Linux /proc), to tell CPU-bound from waiting."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- Clarion worker


@dataclass
class Clarion:
    """A running worker and the names it uses."""

    bootstrap: str
    prefix: str
    app_id: str
    worker: WorkerProcess

    def topic(self, name: str) -> str:
        return self.prefix + name

    def changelog(self, table: str) -> str:
        # Faust names a table's changelog topic "<app id>-<table>-changelog".
        return f"{self.app_id}-{table}-changelog"

    def cpu_seconds(self) -> float | None:
        proc = self.worker.proc
        return None if proc is None else cpu_seconds(proc.pid)


@contextlib.asynccontextmanager
async def clarion_worker(
    bootstrap: str,
    workdir: Path,
    partitions: int,
    log_name: str,
    loglevel: str = "info",
    *,
    lanes: str = "all",
    prefix: str | None = None,
    app_id: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> AsyncIterator[Clarion]:
    """Create Clarion's topics, start one `clarion worker` and wait until it is ready.
    Its log goes to benchmarks/out/<log_name>.worker.log (kept for post-mortems).

    `lanes` is CLARION_LANES ("all", or e.g. "critical"). Workers that share one pipeline
    pass the same `prefix` (topics) and each its own `app_id` (consumer group, tables) and
    `workdir` (RocksDB tables, outbox); both are generated when not given. `extra_env` is
    merged last, so it can override anything above.

    `loglevel` stays "info": at "warn" or above Faust installs its terminal spinner, which
    sets the root logger to DEBUG, so every debug call in Faust and aiokafka builds a
    LogRecord that is then dropped (measurably slower than "info")."""
    tag = run_tag()
    prefix = f"b{tag}." if prefix is None else prefix
    app_id = f"clarion-bench-{tag}" if app_id is None else app_id
    # Topics exist before the worker starts, so input can be produced at any time.
    await ensure_topics(
        bootstrap, all_topics(), prefix=prefix, partitions=partitions, replication_factor=1
    )
    env = worker_env(
        bootstrap,
        prefix=prefix,
        app_id=app_id,
        partitions=partitions,
        workdir=workdir,
        extra={
            "CLARION_INAPP_TOKEN_SECRET": TOKEN_SECRET,
            # One log line per delivery would measure the logger, not the pipeline.
            "CLARION_OUTBOX_CONSOLE": "false",
            "CLARION_LANES": lanes,
            **(extra_env or {}),
        },
    )
    log_path = OUT_DIR / f"{log_name}.worker.log"
    log_path.unlink(missing_ok=True)
    worker = WorkerProcess(env, log_path, loglevel=loglevel)
    worker.start()
    try:
        started = time.monotonic()
        await asyncio.to_thread(worker.wait_ready, 120.0)
        log.info("worker ready in %.1f s (log: %s)", time.monotonic() - started, log_path)
        yield Clarion(bootstrap, prefix, app_id, worker)
    finally:
        stopping = time.monotonic()
        # In a thread, so the event loop runs meanwhile: on Ctrl-C the SSE client task is
        # cancelled too and must get to close its connection, or the worker's web server
        # waits for it. Shielded: a second Ctrl-C cannot abandon the stop half-way (and
        # asyncio.run waits for the thread). The figures are taken by now, so a worker that
        # ignores SIGTERM for 20 s gets SIGKILL (WorkerProcess.stop's default is 30 s); 20 s
        # because an SSE handler only notices its client left at its next 15 s keepalive,
        # and the worker's web server waits for it.
        await asyncio.shield(asyncio.to_thread(worker.stop, 20.0))
        code = worker.proc.returncode if worker.proc is not None else None
        log.log(
            logging.WARNING if code == -signal.SIGKILL else logging.INFO,
            "worker stopped in %.1f s (exit code %s)",
            time.monotonic() - stopping,
            code,
        )


@dataclass(frozen=True)
class Profile:
    user: str
    preferences: dict[str, Any]
    contacts: dict[str, Any]


def make_profiles(users: Iterable[str], rng: random.Random) -> list[Profile]:
    return [Profile(u, preferences_for(u, rng), contacts_for(u, rng)) for u in users]


async def seed_profiles(clarion: Clarion, profiles: Sequence[Profile], timeout_s: float) -> None:
    """Produce preferences and contacts, then wait until the worker has applied them all
    (its table changelogs hold one write per user), so no event is routed before."""
    records = []
    for p in profiles:
        key = p.user.encode()
        records.append((clarion.topic(PREFERENCES), key, encode(p.preferences)))
        records.append((clarion.topic(CONTACTS), key, encode(p.contacts)))
    async with kafka_producer(clarion.bootstrap, linger_ms=5) as producer:
        await send_all(producer, records)
    await wait_profiles_applied(clarion, len(profiles), timeout_s)


async def wait_profiles_applied(clarion: Clarion, count: int, timeout_s: float) -> None:
    """Wait until `clarion` has applied `count` profiles (one write per user in each of its
    table changelogs). Workers with their own app id each have their own changelogs: call
    this for every one of them that shares the seeded topics."""
    changelogs = [clarion.changelog(PREFERENCES), clarion.changelog(CONTACTS)]
    async with offsets_reader(clarion.bootstrap) as reader:
        for topic in changelogs:
            applied = await wait_for_count(reader, [topic], count, stall_s=timeout_s)
            if applied < count:
                raise RuntimeError(
                    f"worker applied {applied}/{count} profiles to {topic}; log tail:\n"
                    + clarion.worker.log_tail()
                )


# --------------------------------------------------------------------------- Kafka helpers


def encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@contextlib.asynccontextmanager
async def kafka_producer(bootstrap: str, **config: Any) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **config)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def offsets_reader(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer outside any group, for end offsets and single-record peeks."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def kafka_admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def send_all(
    producer: AIOKafkaProducer, records: Iterable[tuple[str, bytes | None, bytes]]
) -> float:
    """Send every (topic, key, value) as fast as the producer takes them; return the seconds
    until the last one is acknowledged."""
    started = time.perf_counter()
    # send() only waits for buffer space; the futures resolve on the broker's ack.
    futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
    await asyncio.gather(*futures)
    return time.perf_counter() - started


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(100):
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        # Metadata is fetched lazily; a topic created (or first written) moments ago
        # only shows up after a refresh.
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} does not exist")


async def record_count(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> int:
    """Records written to `topics` (sum of end offsets: every topic here starts empty)."""
    tps = [tp for topic in topics for tp in await partitions_of(consumer, topic)]
    ends = await consumer.end_offsets(tps)
    return int(sum(ends.values()))


async def group_lag(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str, topics: Sequence[str]
) -> int:
    """Records on `topics` that consumer group `group` has not committed yet. Faust commits
    only what its agents finished (acked), so 0 means everything there was processed."""
    tps = [tp for topic in topics for tp in await partitions_of(consumer, topic)]
    ends = await consumer.end_offsets(tps)
    committed = await admin.list_consumer_group_offsets(group)
    done = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
    return int(sum(max(0, ends[tp] - done.get(tp, 0)) for tp in tps))


async def ingest_lag(
    admin: AIOKafkaAdminClient,
    consumer: AIOKafkaConsumer,
    app_id: str,
    prefix: str,
    topics: Sequence[str],
) -> int:
    """Records on ingress `topics` (full names) that ingest has not committed: each lane's
    ingress topics are read by a topic loader committing under its own group
    (agents/ingest.py), which commits only what it processed and flushed."""
    lag = 0
    for topic in topics:
        lane = INGRESS_LANE[topic.removeprefix(prefix)]
        lag += await group_lag(admin, consumer, ingest_group(app_id, lane), [topic])
    return lag


async def wait_for_count(
    consumer: AIOKafkaConsumer, topics: Sequence[str], target: int, stall_s: float
) -> int:
    """Poll until `topics` hold `target` records, or the count stops growing for `stall_s`.
    Returns the last count."""
    count, last_change = -1, time.monotonic()
    while True:
        now_count = await record_count(consumer, topics)
        if now_count != count:
            count, last_change = now_count, time.monotonic()
        if count >= target or time.monotonic() - last_change > stall_s:
            return count
        await asyncio.sleep(0.25)


async def edge_timestamp(
    consumer: AIOKafkaConsumer, topics: Sequence[str], *, last: bool
) -> float | None:
    """Earliest first-record (or latest last-record) timestamp across the partitions of
    `topics`, in Unix seconds; reads one record per non-empty partition."""
    tps = [tp for topic in topics for tp in await partitions_of(consumer, topic)]
    ends = await consumer.end_offsets(tps)
    wanted = [tp for tp in tps if ends[tp] > 0]
    if not wanted:
        return None
    consumer.assign(wanted)
    for tp in wanted:
        consumer.seek(tp, ends[tp] - 1 if last else 0)
    stamps: dict[TopicPartition, int] = {}
    deadline = time.monotonic() + 30
    while len(stamps) < len(wanted) and time.monotonic() < deadline:
        batch = await consumer.getmany(*wanted, timeout_ms=500)
        for tp, records in batch.items():
            stamps.setdefault(tp, records[0].timestamp)
    consumer.unsubscribe()
    if not stamps:
        return None
    return (max(stamps.values()) if last else min(stamps.values())) / 1000


# --------------------------------------------------------------------------- stats and output


def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile (0-100) of a non-empty sequence, linear between closest ranks."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class LatencyStats:
    """Latencies in milliseconds, and how many were expected (the rest never arrived)."""

    samples_ms: list[float] = field(default_factory=list)
    expected: int = 0

    def summary(self) -> dict[str, float | int | None]:
        s = self.samples_ms
        figures: dict[str, float | int | None] = {"n": len(s), "missing": self.expected - len(s)}
        for name, q in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("max_ms", 100)):
            # None, not NaN: NaN is not JSON.
            figures[name] = round(percentile(s, q), 2) if s else None
        figures["mean_ms"] = round(sum(s) / len(s), 2) if s else None
        return figures


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def faust_hop_process(
    bootstrap: str, src: str, dst: str, workdir: Path, log_name: str, linger_ms: float = 5.0
) -> AsyncIterator[tuple[asyncio.subprocess.Process, Path]]:
    """benchmarks/faust_hop.py (the bare Faust hop: one agent copying bytes from `src` to
    `dst`) in its own process and consumer group, logging to benchmarks/out/<log_name>;
    stopped (SIGTERM, then kill after 20 s) on exit. Yields the process and its log path."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FAUST_HOP_SRC": src,
        "FAUST_HOP_DST": dst,
        "FAUST_HOP_APP_ID": f"faust-hop-{run_tag()}",
        "FAUST_HOP_DATA": str(workdir / "faust-hop"),
        "FAUST_HOP_LINGER_MS": str(linger_ms),
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    log_path = OUT_DIR / log_name
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.faust_hop", "worker", "-l", "info",
            env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            yield proc, log_path
        finally:
            await stop_subprocess(proc)


async def stop_subprocess(proc: asyncio.subprocess.Process, grace_s: float = 20.0) -> None:
    """SIGTERM a benchmark's helper process, SIGKILL it if it is still there after
    `grace_s`."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
