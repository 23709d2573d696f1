"""Gateway benchmark: idle SSE connections held by one `clarion gateway` process, memory
per connection, and fan-in latency of one in-app notification to each connected client.

Two paths into the gateway are measured, each with one notification per connected user,
all produced at once:
- **Kafka → gateway**: `GatewayPush` records produced straight to the gateway's partition
  of `gateway.deliveries` (the gateway's own cost: consume, parse, route, write);
- **worker → gateway**: deliveries produced to `deliveries.in_app.high`, so a real worker's
  in-app sink writes each inbox, looks up presence and forwards to the gateway.
Baseline, in the same run: a bare aiohttp SSE server (its own process, same token check)
holding the same number of connections, told by one HTTP request to write one frame to every
connection. Ratios are gateway / baseline.

The benchmark raises its RLIMIT_NOFILE to the hard limit (so do the gateway and the baseline
server), uses loopback only, stops by itself, and leaves no processes behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiohttp import web

from benchmarks.common import (
    OUT_DIR,
    TOKEN_SECRET,
    Clarion,
    Report,
    clarion_worker,
    cpu_seconds,
    kafka_producer,
    markdown_table,
    percentile,
    ratio,
    run_benchmark,
)
from devenv.gateway import GatewayProcess
from devenv.worker import free_port
from logic.ids import delivery_id, notification_id
from logic.presence import gateway_partition
from logic.tokens import InvalidToken, issue_token, verify_token
from schemas.common import Category, Channel, Lane
from schemas.notifications import Delivery, InboxItem, Target
from schemas.presence import GatewayPush
from streams.catalog import GATEWAY_DELIVERIES, GATEWAY_PARTITIONS, delivery_topic

log = logging.getLogger("benchmarks.gateway")
GATEWAY_ID = "gw-bench"


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------- clients


class Fleet:
    """N SSE clients in this process, one connection per user. Counts the connections that
    said `ready_marker`; keeps every `data:` line with its arrival time."""

    def __init__(self, url: str, users: Sequence[str], ready_marker: bytes) -> None:
        self.url = url
        self.users = users
        self.ready_marker = ready_marker
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.failed = 0
        self.received: list[tuple[float, bytes]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def connect(self, concurrency: int) -> float:
        """Open every connection (`concurrency` handshakes at a time); return the seconds
        until each one said its ready marker."""
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
        )
        gate = asyncio.Semaphore(concurrency)
        started = time.monotonic()
        tokens = [
            issue_token(u, TOKEN_SECRET, timedelta(hours=2), datetime.now(UTC)) for u in self.users
        ]
        self._tasks = [
            asyncio.create_task(self._client(user, token, gate))
            for user, token in zip(self.users, tokens, strict=True)
        ]
        while not self.all_ready.is_set():
            if self.failed:
                raise RuntimeError(f"{self.failed} connections failed ({self.ready} ready)")
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    async def _client(self, user: str, token: str, gate: asyncio.Semaphore) -> None:
        assert self._session is not None
        ready = False
        try:
            async with gate:
                response = await self._session.get(
                    self.url, headers={"Authorization": f"Bearer {token}"}
                )
                if response.status != 200:
                    raise RuntimeError(f"{user}: HTTP {response.status}")
                while not ready:
                    line = await response.content.readline()
                    if not line:
                        raise RuntimeError(f"{user}: stream ended")
                    if line.startswith(self.ready_marker):
                        ready = True
            self.ready += 1
            if self.ready == len(self.users):
                self.all_ready.set()
            async for line in response.content:
                if line.startswith(b"data: "):
                    self.received.append((time.time(), line))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not ready:
                self.failed += 1
                log.warning("client %s failed: %r", user, exc)

    async def wait_received(self, n: int, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.received) >= n:
                break
            await asyncio.sleep(0.05)
        return len(self.received)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


def fan_in_stats(received: Sequence[tuple[float, bytes]], expected: int) -> dict[str, Any]:
    """Latency per client: arrival time minus the send time in the item (`created_at`)."""
    samples = []
    for at, line in received:
        data = json.loads(line[6:])
        sent = datetime.fromisoformat(data["created_at"]).timestamp()
        samples.append((at - sent) * 1000)
    figures: dict[str, Any] = {"n": len(samples), "missing": expected - len(samples)}
    for name, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99), ("max_ms", 100)):
        figures[name] = round(percentile(samples, q), 1) if samples else None
    return figures


# --------------------------------------------------------------------------- baseline server


def serve_baseline(port: int) -> None:
    """A bare aiohttp SSE server: holds connections by user, and on POST /fanout writes one
    frame to each (what a gateway does once the item is in hand, without Kafka)."""
    raise_fd_limit()
    conns: dict[str, asyncio.Queue[bytes]] = {}

    async def stream(request: web.Request) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            user = verify_token(token, TOKEN_SECRET)
        except InvalidToken:
            return web.Response(status=401)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        queue: asyncio.Queue[bytes] = asyncio.Queue(64)
        conns[user] = queue
        try:
            await response.write(b": connected\n\n")
            while True:
                await response.write(await queue.get())
        finally:
            conns.pop(user, None)

    async def fanout(request: web.Request) -> web.Response:
        body = await request.json()
        for user, queue in conns.items():
            item = {"id": f"b-{user}", "user_id": user, "created_at": body["created_at"]}
            queue.put_nowait(f"id: b-{user}\ndata: {json.dumps(item)}\n\n".encode())
        return web.json_response({"queued": len(conns)})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"connections": len(conns)})

    app = web.Application()
    app.router.add_get("/inapp/stream", stream)
    app.router.add_post("/fanout", fanout)
    app.router.add_get("/health", health)
    web.run_app(
        app, host="127.0.0.1", port=port, backlog=4096, access_log=None, print=None,
        handler_cancellation=True, shutdown_timeout=5,
    )  # fmt: skip


@contextlib.contextmanager
def baseline_process(port: int) -> Any:
    log_path = OUT_DIR / "gateway-baseline.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.gateway", "--serve-baseline", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("baseline server did not start")
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


# --------------------------------------------------------------------------- phases


async def hold_and_measure(
    pid: int, url: str, users: Sequence[str], marker: bytes, args: argparse.Namespace
) -> tuple[Fleet, dict[str, Any]]:
    await asyncio.sleep(1.0)
    idle = rss_bytes(pid)
    f = Fleet(url, users, marker)
    try:
        connect_s = await f.connect(args.concurrency)
    except BaseException:
        await f.close()
        raise
    await asyncio.sleep(2.0)  # let allocations settle before sampling
    held = rss_bytes(pid)
    return f, {
        "connections": f.ready,
        "connect_all_s": round(connect_s, 1),
        "rss_idle_mib": round(idle / 2**20, 1),
        "rss_held_mib": round(held / 2**20, 1),
        "rss_per_connection_kib": round((held - idle) / len(users) / 1024, 1),
    }


def _item(i: int) -> InboxItem:
    return InboxItem(
        id=f"k-{i}",
        seq=1,
        notification_id=f"nk-{i}",
        category=Category.MESSAGE,
        lane=Lane.HIGH,
        title="Fan-in",
        body="one for each",
        created_at=datetime.now(UTC),
    )


async def fan_in_kafka(clarion: Clarion, f: Fleet, users: Sequence[str], timeout_s: float) -> Any:
    """One GatewayPush per user, straight to the gateway's partition."""
    topic = clarion.topic(GATEWAY_DELIVERIES)
    partition = gateway_partition(GATEWAY_ID, GATEWAY_PARTITIONS)
    before = len(f.received)
    started = time.monotonic()
    async with kafka_producer(clarion.bootstrap, linger_ms=5) as producer:
        futures = []
        for i, user in enumerate(users):
            push = GatewayPush(user_id=user, items=[_item(i)])
            value = push.model_dump_json().encode()
            futures.append(
                await producer.send(topic, value, key=user.encode(), partition=partition)
            )
        await asyncio.gather(*futures)
    await f.wait_received(before + len(users), timeout_s)
    stats = fan_in_stats(f.received[before:], len(users))
    stats["all_received_s"] = round(time.monotonic() - started, 2)
    return stats


async def fan_in_worker(clarion: Clarion, f: Fleet, users: Sequence[str], timeout_s: float) -> Any:
    """One in-app delivery per user on deliveries.in_app.high: the worker's in-app sink
    stores it, finds the user online at the gateway and forwards it."""
    topic = clarion.topic(delivery_topic(Channel.IN_APP, Lane.HIGH))
    before = len(f.received)
    started = time.monotonic()
    async with kafka_producer(clarion.bootstrap, linger_ms=5) as producer:
        futures = []
        for i, user in enumerate(users):
            nid = notification_id(f"fanin-{i}", user)
            now = datetime.now(UTC)
            delivery = Delivery(
                delivery_id=delivery_id(nid, Channel.IN_APP, user),
                notification_id=nid,
                recipient_id=user,
                category=Category.MESSAGE,
                lane=Lane.HIGH,
                channel=Channel.IN_APP,
                target=Target(address=user),
                title="Fan-in",
                body="through the worker",
                occurred_at=now,
                created_at=now,
            )
            value = delivery.model_dump_json().encode()
            futures.append(await producer.send(topic, value, key=user.encode()))
        await asyncio.gather(*futures)
    await f.wait_received(before + len(users), timeout_s)
    stats = fan_in_stats(f.received[before:], len(users))
    stats["all_received_s"] = round(time.monotonic() - started, 2)
    return stats


async def gateway_side(
    args: argparse.Namespace, bootstrap: str, workdir: Path, users: Sequence[str]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with clarion_worker(bootstrap, workdir, args.partitions, "gateway") as clarion:
        assert clarion.worker.proc is not None
        gw = GatewayProcess(
            clarion.worker.env, OUT_DIR / "gateway.gateway.log", GATEWAY_ID, port=free_port()
        )
        gw.log_path.unlink(missing_ok=True)
        gw.start()
        try:
            await asyncio.to_thread(gw.wait_ready, 60.0)
            assert gw.proc is not None
            url = f"{gw.base_url}/inapp/stream"
            cpu_before = _cpu(gw.proc.pid)
            f, held = await hold_and_measure(gw.proc.pid, url, users, b": synced", args)
            try:
                result["held"] = held
                result["held"]["health_connections"] = (await _health(gw.base_url))["connections"]
                log.info("gateway holds %s", held)
                result["held"]["gateway_cpu_s"] = _cpu_since(gw.proc.pid, cpu_before)
                worker_pid = clarion.worker.proc.pid
                for name, run, targets in (
                    ("kafka_to_gateway", fan_in_kafka, users),
                    ("worker_to_gateway", fan_in_worker, users[: args.via_worker]),
                ):
                    gw_cpu, worker_cpu = _cpu(gw.proc.pid), _cpu(worker_pid)
                    result[name] = await run(clarion, f, targets, args.grace)
                    result[name]["gateway_cpu_s"] = _cpu_since(gw.proc.pid, gw_cpu)
                    result[name]["worker_cpu_s"] = _cpu_since(worker_pid, worker_cpu)
                    log.info("%s fan-in: %s", name, result[name])
            finally:
                await f.close()
        finally:
            await asyncio.shield(asyncio.to_thread(gw.stop, 20.0))
            log.info("gateway stopped (exit code %s)", gw.proc.returncode if gw.proc else None)
    return result


async def baseline_side(args: argparse.Namespace, users: Sequence[str]) -> dict[str, Any]:
    port = free_port()
    result: dict[str, Any] = {}
    with baseline_process(port) as proc:
        url = f"http://127.0.0.1:{port}/inapp/stream"
        f, held = await hold_and_measure(proc.pid, url, users, b": connected", args)
        try:
            result["held"] = held
            log.info("baseline holds %s", held)
            started, cpu = time.monotonic(), _cpu(proc.pid)
            async with httpx.AsyncClient() as http:
                r = await http.post(
                    f"http://127.0.0.1:{port}/fanout",
                    json={"created_at": datetime.now(UTC).isoformat()},
                    timeout=60,
                )
                r.raise_for_status()
            await f.wait_received(len(users), args.grace)
            stats = fan_in_stats(f.received, len(users))
            stats["all_received_s"] = round(time.monotonic() - started, 2)
            stats["server_cpu_s"] = _cpu_since(proc.pid, cpu)
            result["fan_in"] = stats
            log.info("baseline fan-in: %s", stats)
        finally:
            await f.close()
    return result


def _cpu(pid: int) -> float | None:
    return cpu_seconds(pid)


def _cpu_since(pid: int, before: float | None) -> float | None:
    """CPU seconds a process used since `before`: unlike wall time, not inflated by other
    load on the machine."""
    after = cpu_seconds(pid)
    return None if before is None or after is None else round(after - before, 2)


async def _health(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        return dict((await http.get(f"{base_url}/health", timeout=10)).json())


async def benchmark(args: argparse.Namespace, bootstrap: str, workdir: Path) -> Report:
    fds = raise_fd_limit()
    log.info("file descriptor limit %d; %d connections", fds, args.connections)
    users = [f"fan-{i:06d}" for i in range(args.connections)]
    load_before = os.getloadavg()[0]
    baseline = await baseline_side(args, users)
    gateway = await gateway_side(args, bootstrap, workdir, users)
    figures: dict[str, Any] = {
        "benchmark": "gateway",
        "connections": args.connections,
        "partitions": args.partitions,
        "fd_limit": fds,
        # Other work on the machine stretches wall-clock latencies; CPU seconds are not.
        "load_average_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "gateway": gateway,
        "baseline": baseline,
        "ratio_rss_per_connection": ratio(
            gateway["held"]["rss_per_connection_kib"], baseline["held"]["rss_per_connection_kib"]
        ),
        "ratio_fan_in_p50": ratio(
            gateway["kafka_to_gateway"]["p50_ms"], baseline["fan_in"]["p50_ms"]
        ),
        "ratio_fan_in_p99": ratio(
            gateway["kafka_to_gateway"]["p99_ms"], baseline["fan_in"]["p99_ms"]
        ),
    }
    return Report(figures, _markdown(args, figures))


def _markdown(args: argparse.Namespace, fig: dict[str, Any]) -> str:
    g, b = fig["gateway"], fig["baseline"]
    held = markdown_table(
        (
            "process",
            "connections held",
            "connect all (s)",
            "RSS idle MiB",
            "RSS held MiB",
            "RSS per connection KiB",
        ),
        [
            (
                "clarion gateway",
                g["held"]["connections"],
                g["held"]["connect_all_s"],
                g["held"]["rss_idle_mib"],
                g["held"]["rss_held_mib"],
                g["held"]["rss_per_connection_kib"],
            ),
            (
                "bare aiohttp SSE",
                b["held"]["connections"],
                b["held"]["connect_all_s"],
                b["held"]["rss_idle_mib"],
                b["held"]["rss_held_mib"],
                b["held"]["rss_per_connection_kib"],
            ),
        ],
    )
    rows = []
    for name, s in (
        ("Kafka → gateway", g["kafka_to_gateway"]),
        (f"worker → gateway ({args.via_worker} clients)", g["worker_to_gateway"]),
        ("bare aiohttp (HTTP trigger)", b["fan_in"]),
    ):
        rows.append(
            (
                name,
                s["n"],
                s["missing"],
                s["p50_ms"],
                s["p95_ms"],
                s["p99_ms"],
                s["max_ms"],
                s["all_received_s"],
                s.get("gateway_cpu_s", s.get("server_cpu_s")),
                s.get("worker_cpu_s", "-"),
            )
        )
    fan_in = markdown_table(
        (
            "path",
            "n",
            "missing",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "all received (s)",
            "server CPU s",
            "worker CPU s",
        ),
        rows,
    )
    return "\n\n".join([
        "# Gateway: idle SSE connections, memory per connection, fan-in latency",
        f"{args.connections} SSE clients (one per user, loopback, one aiohttp client process), "
        f"file descriptor limit {fig['fd_limit']}; {args.partitions} partitions, one worker; "
        f"1-minute load average {fig['load_average_1m'][0]} at the start, "
        f"{fig['load_average_1m'][1]} at the end.",
        held,
        fan_in,
        f"Ratios (gateway / bare): RSS per connection {fig['ratio_rss_per_connection']}, "
        f"fan-in p50 {fig['ratio_fan_in_p50']}, p99 {fig['ratio_fan_in_p99']} (Kafka path).",
        "Connect all = from the first connect until every client has its `: synced` "
        "(the worker applied its ONLINE and answered with the inbox) or, bare, `: connected`.",
    ])  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument(
        "--via-worker",
        type=int,
        default=2_000,
        help="clients that get their item through the worker's in-app sink (its throughput, "
        "not the gateway's, sets that path's latency)",
    )
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes at a time")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--grace", type=float, default=120.0, help="seconds to wait per fan-in")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--serve-baseline", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_baseline is not None:
        serve_baseline(args.serve_baseline)
        return 0
    return run_benchmark("gateway", lambda b, w: benchmark(args, b, w), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
