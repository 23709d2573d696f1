"""Delivery: sustained deliveries/s per channel through the real provider SDKs (firebase-admin,
aioapns, sendgrid, twilio, httpx webhooks) to the provider sandbox with 50 ms simulated
latency on every send, next to the sandbox's own ceiling measured in the same run: a plain
async client (aiohttp; for APNs bare h2 over TLS) sending valid minimal requests at the same
concurrency (256 in flight).

The sandbox runs in its own process (`python -m devenv.sandbox`), so it shares no GIL with
the load. Per channel, one after another: the ceiling; Clarion's own sender for the channel
driven directly ("SDK alone", no Kafka or Faust), to show where the time goes; then N
deliveries produced onto `deliveries.<channel>.high` before one `clarion worker` starts and
drains them, timed from the first to the last accepted send in the sandbox's record.

    python -m benchmarks.delivery [--per-channel 10000]
        [--channels fcm,apns,sendgrid,twilio,webhook]

`--sdk-only` runs just the ceiling and the SDK alone per channel (no broker, no worker:
seconds, for iterating on a sender), `--repeat` times, and prints their medians and the
ratio SDK alone / ceiling: on a noisy machine the ratio travels better than either rate.

    python -m benchmarks.delivery --sdk-only --channels webhook --repeat 3 \
        --ceiling-s 4 --ceiling-warmup 1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import os
import select
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import h2.config
import h2.connection
import h2.events
import httpx

from benchmarks.common import (
    OUT_DIR,
    Clarion,
    Report,
    clarion_worker,
    cpu_seconds,
    kafka_producer,
    log,
    markdown_table,
    offsets_reader,
    ratio,
    record_count,
    run_benchmark,
    run_tag,
    send_all,
)
from devenv.sandbox.env import APNS_TOPIC, SMS_FROM, provider_env
from logic.ids import delivery_id
from schemas.common import Category, Channel, Lane
from schemas.notifications import Delivery, Target
from sinks.providers import ProviderSettings, build_senders, close_senders
from sinks.providers.registry import sink_concurrency
from sinks.providers.webhook import DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from streams.admin import ensure_topics
from streams.catalog import DLQ_DELIVERIES, RETRIES, all_topics, delivery_topic

LATENCY_MS = 50
PROVIDERS = ("fcm", "apns", "sendgrid", "twilio", "webhook")
TWILIO_SID = "AC" + "0" * 32  # what provider_env gives the worker
SDK_ONLY_HEADER = ("channel", "SDK alone/s", "ceiling/s", "SDK alone / ceiling",
                   "SDK-alone CPU", "ceiling client CPU", "machine CPU", "failures",
                   "runs (SDK alone / ceiling)")  # fmt: skip
HEADER = ("channel", "Clarion/s", "steady/s", "SDK alone/s", "ceiling/s", "ratio",
          "lost / dup", "worker CPU", "SDK-alone CPU", "ceiling client CPU",
          "machine CPU")  # fmt: skip


# --------------------------------------------------------------------------- channels


@dataclass(frozen=True)
class Spec:
    """One provider of one channel: what the sandbox records it as, and its addresses."""

    provider: str
    channel: Channel
    platform: str | None = None

    @property
    def label(self) -> str:
        return f"{self.channel.value} ({self.provider})"

    def address(self, user: int, urls: Mapping[str, str]) -> str:
        match self.provider:
            case "fcm":
                return f"fcm-bench-{user:06d}"
            case "apns":
                return hashlib.sha256(f"apns-{user}".encode()).hexdigest()  # 64 hex
            case "sendgrid":
                return f"user{user:06d}@example.com"
            case "twilio":
                return f"+1555{user:07d}"
        return f"{urls['webhook']}/user{user:06d}"  # recorded with target "user<n>"


SPECS = {
    "fcm": Spec("fcm", Channel.PUSH, "fcm"),
    "apns": Spec("apns", Channel.PUSH, "apns"),
    "sendgrid": Spec("sendgrid", Channel.EMAIL),
    "twilio": Spec("twilio", Channel.SMS),
    "webhook": Spec("webhook", Channel.WEBHOOK),
}


def make_delivery(
    spec: Spec, i: int, users: int, urls: Mapping[str, str], tag: str, now: datetime
) -> Delivery:
    """Delivery number i, to recipient i mod `users` (each recipient has its own address)."""
    user = i % users
    address = spec.address(user, urls)
    nid = f"bench-{tag}-{spec.provider}-{i}"
    return Delivery(
        delivery_id=delivery_id(nid, spec.channel, address),
        notification_id=nid,
        recipient_id=f"user{user:06d}",
        category=Category.MESSAGE,
        lane=Lane.HIGH,
        channel=spec.channel,
        target=Target(address=address, platform=spec.platform),
        title="Bob",
        body="hey there, are you still coming tonight?",
        url=f"https://example.com/messages/{i}",
        data={"conversation_id": f"conv{user}"},
        occurred_at=now,
        created_at=now,
    )


def deliveries_for(
    spec: Spec, n: int, users: int, urls: Mapping[str, str], tag: str
) -> tuple[list[tuple[bytes, bytes]], set[str]]:
    """n deliveries as records (key = recipient, value = JSON), and their delivery ids."""
    now = datetime.now(UTC)
    records, ids = [], set()
    for i in range(n):
        d = make_delivery(spec, i, users, urls, tag, now)
        records.append((d.recipient_id.encode(), d.model_dump_json().encode()))
        ids.add(d.delivery_id)
    return records, ids


def machine_busy() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far (Linux /proc/stat), to tell how
    much else was running: the numbers are only comparable on an otherwise idle machine."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick / (os.cpu_count() or 1)


def busy_cores(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 2)


# --------------------------------------------------------------------------- sandbox process


@dataclass
class SandboxProcess:
    proc: subprocess.Popen[bytes]
    urls: dict[str, str]

    @property
    def control(self) -> str:
        return self.urls["control"]

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.proc.pid)


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def sandbox_process(timeout_s: float = 60.0) -> Iterator[SandboxProcess]:
    """`python -m devenv.sandbox` in its own process (and session), stopped on any exit.
    The stop is synchronous on purpose: it runs even while the event loop is being
    cancelled (Ctrl-C, SIGTERM, the harness's time limit)."""
    log_path = OUT_DIR / "delivery.sandbox.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devenv.sandbox"],
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,  # Ctrl-C reaches only us; the finally below stops it
        )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        line = proc.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"sandbox printed no URLs; see {log_path}")
        urls = json.loads(line)
        log.info("sandbox pid %d: %s", proc.pid, urls["control"])
        yield SandboxProcess(proc, urls)
    finally:
        _stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()
        log.info("sandbox stopped (exit code %s)", proc.returncode)


class Control:
    """The sandbox's /_sandbox HTTP API."""

    def __init__(self, client: httpx.AsyncClient, base: str) -> None:
        self.client = client
        self.base = base

    async def slow_down_all(self, latency_ms: int) -> None:
        rules = [{"provider": p, "latency_ms": latency_ms} for p in PROVIDERS]
        (await self.client.post(f"{self.base}/faults", json=rules)).raise_for_status()

    async def clear_sends(self) -> None:
        (await self.client.delete(f"{self.base}/sends")).raise_for_status()

    async def count(self, provider: str) -> int:
        r = await self.client.get(f"{self.base}/sends/count", params={"provider": provider})
        r.raise_for_status()
        return int(r.json()["count"])

    async def sends(self, provider: str) -> list[dict[str, Any]]:
        r = await self.client.get(
            f"{self.base}/sends", params={"provider": provider, "view": "brief"}, timeout=60
        )
        r.raise_for_status()
        return list(r.json()["sends"])


# --------------------------------------------------------------------------- ceiling


class H2Client(asyncio.Protocol):
    """A bare HTTP/2 client connection (the h2 state machine on an asyncio transport): the
    leanest Python client there is for the APNs ceiling, no pool or retry logic."""

    def __init__(self, authority: str) -> None:
        self.authority = authority
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.transport: asyncio.Transport | None = None
        self.waiting: dict[int, asyncio.Future[int]] = {}
        self.status: dict[int, int] = {}
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.initiate_connection()
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id is not None:
                # Decoded to str (header_encoding), whatever h2's stubs say.
                found = [v for k, v in event.headers or [] if k in (":status", b":status")]
                self.status[event.stream_id] = int(found[0]) if found else 0
            elif isinstance(event, h2.events.DataReceived) and event.stream_id is not None:
                self.conn.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id
                )
            elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                assert event.stream_id is not None
                future = self.waiting.pop(event.stream_id, None)
                if future is not None and not future.done():
                    future.set_result(self.status.pop(event.stream_id, 0))
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.connection_lost(None)
        if self.transport is not None:
            self.transport.write(self.conn.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for future in self.waiting.values():
            if not future.done():
                future.set_result(0)
        self.waiting.clear()

    async def post(self, path: str, headers: list[tuple[str, str]], body: bytes) -> int:
        assert self.transport is not None
        if self.closed:
            raise ConnectionError("h2 connection closed")
        stream_id = self.conn.get_next_available_stream_id()
        request = [(":method", "POST"), (":scheme", "https"), (":authority", self.authority),
                   (":path", path), ("content-length", str(len(body))), *headers]  # fmt: skip
        self.conn.send_headers(stream_id, request)
        self.conn.send_data(stream_id, body, end_stream=True)
        future = asyncio.get_running_loop().create_future()
        self.waiting[stream_id] = future
        self.transport.write(self.conn.data_to_send())
        return await future


@dataclass
class H2Pool:
    connections: list[H2Client]

    @classmethod
    async def open(cls, url: str, ca_file: str, concurrency: int) -> H2Pool:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        context = ssl.create_default_context(cafile=ca_file)
        context.set_alpn_protocols(["h2"])
        loop = asyncio.get_running_loop()
        connections = []
        # At most 64 streams per connection, below the sandbox's limit of 100.
        for _ in range(-(-concurrency // 64)):
            _, protocol = await loop.create_connection(
                lambda: H2Client(parts.netloc), parts.hostname, parts.port, ssl=context
            )
            connections.append(protocol)
        return cls(connections)

    async def post(self, path: str, headers: list[tuple[str, str]], body: bytes) -> int:
        connection = min(self.connections, key=lambda c: len(c.waiting))  # the least busy
        return await connection.post(path, headers, body)

    def close(self) -> None:
        for connection in self.connections:
            if connection.transport is not None:
                connection.transport.close()


SendOne = Callable[[int], Awaitable[bool]]


@contextlib.asynccontextmanager
async def raw_sender(
    spec: Spec, urls: Mapping[str, str], concurrency: int
) -> AsyncIterator[SendOne]:
    """A plain client for `spec`'s provider: `send(i)` posts one valid, minimal request (about
    the size of what Clarion sends) and says whether the sandbox accepted it."""
    if spec.provider == "apns":
        # HTTP/2 + TLS as APNs speaks it; the sandbox allows 100 streams per connection.
        connections = await H2Pool.open(urls["apns"], urls["apns_ca_file"], concurrency)

        async def send_apns(i: int) -> bool:
            payload = {
                "aps": {"alert": {"title": "Bob", "body": "hey there"}, "sound": "default"},
                "clarion_delivery_id": f"ceiling-{i}",
                "url": f"https://example.com/messages/{i}",
            }
            headers = [
                ("authorization", "bearer sandbox.jwt.token"),
                ("apns-topic", APNS_TOPIC),
                ("apns-push-type", "alert"),
                ("apns-priority", "10"),
                ("apns-id", str(uuid.uuid4())),
            ]
            path = f"/3/device/{spec.address(i, urls)}"
            status = await connections.post(path, headers, json.dumps(payload).encode())
            return status == 200

        try:
            yield send_apns
        finally:
            connections.close()
        return

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        if spec.provider == "fcm":
            form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x"}
            async with session.post(urls["fcm_token_uri"], data=form) as r:
                bearer = (await r.json())["access_token"]
            url = f"{urls['fcm']}/v1/projects/clarion-sandbox/messages:send"

            async def send_fcm(i: int) -> bool:
                message = {
                    "token": spec.address(i, urls),
                    "notification": {"title": "Bob", "body": "hey there"},
                    "android": {"priority": "high"},
                    "data": {"clarion_delivery_id": f"ceiling-{i}", "url": "https://example.com"},
                }
                headers = {"Authorization": f"Bearer {bearer}"}
                async with session.post(url, json={"message": message}, headers=headers) as r:
                    await r.read()
                    return r.status == 200

            yield send_fcm
        elif spec.provider == "sendgrid":
            url = f"{urls['sendgrid']}/v3/mail/send"

            async def send_sendgrid(i: int) -> bool:
                mail = {
                    "personalizations": [{"to": [{"email": spec.address(i, urls)}]}],
                    "from": {"email": "notifications@example.com"},
                    "subject": "Bob",
                    "content": [
                        {"type": "text/plain", "value": "hey there"},
                        {"type": "text/html", "value": "<p>hey there</p>"},
                    ],
                    "custom_args": {"clarion_delivery_id": f"ceiling-{i}"},
                }
                headers = {"Authorization": "Bearer SG.sandbox"}
                async with session.post(url, json=mail, headers=headers) as r:
                    await r.read()
                    return r.status == 202

            yield send_sendgrid
        elif spec.provider == "twilio":
            url = f"{urls['twilio']}/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
            basic = base64.b64encode(f"{TWILIO_SID}:sandbox".encode()).decode()
            auth = {"Authorization": f"Basic {basic}"}

            async def send_twilio(i: int) -> bool:
                form = {
                    "To": spec.address(i, urls),
                    "From": SMS_FROM,
                    "Body": "Bob: hey there https://example.com",
                    "StatusCallback": f"{urls['twilio']}/_sandbox/twilio-status?delivery_id=c{i}",
                }
                async with session.post(url, data=form, headers=auth) as r:
                    await r.read()
                    return r.status == 201

            yield send_twilio
        else:
            secret = urls.get("webhook_secret") or ""

            async def send_webhook(i: int) -> bool:
                body = json.dumps({"delivery_id": f"ceiling-{i}", "body": "hey there"}).encode()
                ts = int(time.time())
                headers = {
                    "Content-Type": "application/json",
                    DELIVERY_ID_HEADER: f"ceiling-{i}",
                    TIMESTAMP_HEADER: str(ts),
                    SIGNATURE_HEADER: sign(secret, ts, body),
                }
                async with session.post(spec.address(i, urls), data=body, headers=headers) as r:
                    await r.read()
                    return r.status == 200

            yield send_webhook


async def closed_loop(
    send: SendOne,
    provider: str,
    sandbox: SandboxProcess,
    control: Control,
    args: argparse.Namespace,
    concurrency: int | None = None,
) -> dict[str, Any]:
    """`concurrency` loops (default: --concurrency), each sending its next request as soon as
    the last one is answered,
    for warm-up + `ceiling_s` seconds; accepted sends/s over the part after the warm-up."""
    done: list[float] = []
    failed = 0
    counter = itertools.count()
    started = time.perf_counter()
    measure_from = started + args.ceiling_warmup
    deadline = measure_from + args.ceiling_s

    async def loop() -> None:
        nonlocal failed
        while time.perf_counter() < deadline:
            try:
                ok = await send(next(counter))
            except (aiohttp.ClientError, httpx.HTTPError, TimeoutError, ConnectionError):
                ok = False
            if ok:
                done.append(time.perf_counter())
            else:
                failed += 1

    cpu = time.process_time(), sandbox.cpu_seconds(), machine_busy()
    await asyncio.gather(*(loop() for _ in range(concurrency or args.concurrency)))
    after = time.process_time(), sandbox.cpu_seconds(), machine_busy()
    elapsed = time.perf_counter() - started
    in_window = sum(1 for t in done if measure_from <= t <= deadline)
    recorded = await control.count(provider)
    await control.clear_sends()
    sandbox_before, sandbox_after = cpu[1], after[1]
    return {
        "sends_per_s": round(in_window / args.ceiling_s, 1),
        "accepted": len(done),
        "failed": failed,
        "recorded_by_sandbox": recorded,
        "client_cpu": round((after[0] - cpu[0]) / elapsed, 2),
        "sandbox_cpu": (
            round((sandbox_after - sandbox_before) / elapsed, 2)
            if sandbox_before is not None and sandbox_after is not None
            else None
        ),
        "machine_cpu": busy_cores(cpu[2], after[2]),
    }


async def ceiling(
    spec: Spec, sandbox: SandboxProcess, control: Control, args: argparse.Namespace
) -> dict[str, Any]:
    """The sandbox's ceiling: a plain client, `concurrency` requests in flight."""
    async with raw_sender(spec, sandbox.urls, args.concurrency) as send:
        return await closed_loop(send, spec.provider, sandbox, control, args)


async def sdk_alone(
    spec: Spec, sandbox: SandboxProcess, control: Control, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Clarion's own sender for the channel (the real SDK, as the worker builds it) driven
    directly, with as many sends in flight as the worker's sink keeps (--concurrency, or a
    batching provider's larger `max_in_flight`: SendGrid's mails go out as personalizations
    of shared requests only when many are in flight): no Kafka, no Faust, no ledger, no
    receipts."""
    env = provider_env(sandbox.urls, workdir / "sdk-alone")
    settings = ProviderSettings.model_validate(
        {k.removeprefix("CLARION_").lower(): v for k, v in env.items()} | args.settings
    )
    senders = build_senders(settings)
    try:
        sender = senders[spec.channel]
        now = datetime.now(UTC)
        pool = [make_delivery(spec, i, args.users, sandbox.urls, "sdk", now) for i in range(2000)]

        async def send(i: int) -> bool:
            return (await sender.send(pool[i % len(pool)])).sent

        in_flight = sink_concurrency(settings, spec.channel, args.concurrency)
        return await closed_loop(send, spec.provider, sandbox, control, args, in_flight)
    finally:
        await close_senders(senders)


# --------------------------------------------------------------------------- Clarion


async def wait_for_sends(
    control: Control,
    provider: str,
    expected: int,
    stall_s: float,
    clarion: Clarion,
    label: str,
    *,
    sample: Callable[[], None] | None = None,
    progress: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """Poll the sandbox until it has `expected` sends of `provider`, or none came for
    `stall_s` (then log the worker's tail). `sample` runs at every poll; `progress` adds to
    the progress line logged every 5 s."""
    count, changed, last_log = -1, time.monotonic(), 0.0
    while True:
        now_count = await control.count(provider)
        if sample is not None:
            sample()
        if now_count != count:
            count, changed = now_count, time.monotonic()
        if count >= expected:
            return
        if time.monotonic() - changed > stall_s:
            log.warning(
                "%s: no new sends for %.0f s (%d/%d); worker log tail:\n%s",
                label,
                stall_s,
                count,
                expected,
                clarion.worker.log_tail(),
            )
            return
        if time.monotonic() - last_log > 5:
            last_log = time.monotonic()
            extra = f", {await progress()}" if progress is not None else ""
            log.info("%s: %d/%d sent%s", label, count, expected, extra)
        await asyncio.sleep(0.25)


def send_outcomes(
    sends: list[dict[str, Any]], expected: set[str]
) -> tuple[dict[str, Any], list[float]]:
    """From the sandbox's record: delivered, lost, twice, not ours; and the sorted receive
    times of our sends."""
    counts = Counter(s["delivery_id"] for s in sends)
    stamps = sorted(s["received_at"] for s in sends if s["delivery_id"] in expected)
    figures = {
        "deliveries": len(expected),
        "accepted": len(stamps),
        "lost": len(expected - set(counts)),
        "duplicates": sum(n - 1 for d, n in counts.items() if d in expected),
        "unexpected": sum(n for d, n in counts.items() if d not in expected),
    }
    return figures, stamps


async def clarion_run(
    spec: Spec,
    tag: str,
    bootstrap: str,
    workdir: Path,
    sandbox: SandboxProcess,
    control: Control,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Produce N deliveries onto deliveries.<channel>.high, then start a worker and let it
    drain them through the real SDK; rate from the sandbox's record of accepted sends.
    The topics (prefix b<tag>.) exist already."""
    prefix = f"b{tag}."
    records, expected = deliveries_for(spec, args.per_channel, args.users, sandbox.urls, tag)
    topic = prefix + delivery_topic(spec.channel, Lane.HIGH)
    async with kafka_producer(bootstrap, linger_ms=5) as producer:
        produce_s = await send_all(producer, [(topic, key, value) for key, value in records])
    log.info("%s: produced %d deliveries in %.1f s", spec.label, len(records), produce_s)
    await control.clear_sends()

    env = provider_env(sandbox.urls, workdir / "providers") | {
        "CLARION_SINK_CONCURRENCY": str(args.concurrency),
        **{f"CLARION_PACE_{p.upper()}_PER_S": "1000000" for p in PROVIDERS},
        **{f"CLARION_{k.upper()}": v for k, v in args.settings.items()},
    }
    # (wall clock, CPU seconds of: the worker, the sandbox, the whole machine)
    samples: list[tuple[float, float | None, float | None, float | None]] = []
    async with clarion_worker(
        bootstrap,
        workdir,
        args.partitions,
        f"delivery-{spec.provider}",
        prefix=prefix,
        app_id=f"clarion-bench-{tag}",
        extra_env=env,
    ) as clarion:

        def sample() -> None:
            machine = machine_busy()
            samples.append((
                time.time(), clarion.cpu_seconds(), sandbox.cpu_seconds(),
                machine[0] if machine is not None else None,
            ))  # fmt: skip

        await wait_for_sends(
            control, spec.provider, len(expected), args.stall, clarion, spec.label, sample=sample
        )
        # Anything still in flight (a resend) shows up as a duplicate by now.
        await asyncio.sleep(args.settle)
        sends = await control.sends(spec.provider)
        async with offsets_reader(bootstrap) as reader:
            retried = await record_count(reader, [prefix + RETRIES])
            dead = await record_count(reader, [prefix + DLQ_DELIVERIES])
    figures, stamps = send_outcomes(sends, expected)
    figures |= {
        "retried": retried,
        "dead_lettered": dead,
        "produce_per_s": round(len(records) / produce_s, 1),
    }
    if len(stamps) >= 2 and stamps[-1] > stamps[0]:
        first, last = stamps[0], stamps[-1]
        figures["seconds"] = round(last - first, 2)
        figures["deliveries_per_s"] = round(len(stamps) / (last - first), 1)
        # Steady state: the middle 80 % of the sends, without the start and the tail.
        lo, hi = int(len(stamps) * 0.1), int(len(stamps) * 0.9)
        if stamps[hi] > stamps[lo]:
            figures["steady_per_s"] = round((hi - lo) / (stamps[hi] - stamps[lo]), 1)
        figures["worker_cpu"] = _utilisation(samples, first, last, 1)
        figures["sandbox_cpu"] = _utilisation(samples, first, last, 2)
        figures["machine_cpu"] = _utilisation(samples, first, last, 3)
    return figures


def _utilisation(
    samples: list[tuple[float, float | None, float | None, float | None]],
    first: float,
    last: float,
    i: int,
) -> float | None:
    """Cores used (CPU seconds in column i per second) over the samples inside [first, last]."""
    inside = [(s[0], s[i]) for s in samples if first <= s[0] <= last and s[i] is not None]
    if len(inside) < 2 or inside[-1][0] - inside[0][0] < 1.0:
        return None
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    assert c0 is not None and c1 is not None
    return round((c1 - c0) / (t1 - t0), 2)


# --------------------------------------------------------------------------- report


async def benchmark(args: argparse.Namespace, bootstrap: str, workdir: Path) -> Report:
    results: dict[str, dict[str, Any]] = {}
    # With only 2 cores, anyone else's load skews every figure: say so in the results.
    before = machine_busy()
    await asyncio.sleep(2)
    idle_busy = busy_cores(before, machine_busy())
    if idle_busy is not None and idle_busy > 0.3:
        log.warning(
            "the machine is busy before the start (%.2f cores): figures will be low", idle_busy
        )
    with sandbox_process() as sandbox:
        async with httpx.AsyncClient(timeout=30) as client:
            control = Control(client, sandbox.control)
            await control.slow_down_all(LATENCY_MS)
            for name in args.channels:
                spec = SPECS[name]
                # Topics first: their partitions have leaders by the time the ceiling is done.
                tag = run_tag()
                await ensure_topics(
                    bootstrap,
                    all_topics(),
                    prefix=f"b{tag}.",
                    partitions=args.partitions,
                    replication_factor=1,
                )
                raw = await ceiling(spec, sandbox, control, args)
                log.info("%s: sandbox ceiling %s/s (%s)", spec.label, raw["sends_per_s"], raw)
                sdk = await sdk_alone(spec, sandbox, control, workdir / name, args)
                log.info("%s: SDK alone %s/s (%s)", spec.label, sdk["sends_per_s"], sdk)
                ours = await clarion_run(
                    spec, tag, bootstrap, workdir / name, sandbox, control, args
                )
                log.info("%s: Clarion %s/s (%s)", spec.label, ours.get("deliveries_per_s"), ours)
                results[name] = {
                    "clarion": ours,
                    "sdk_alone": sdk,
                    "ceiling": raw,
                    "ratio": ratio(ours.get("deliveries_per_s"), raw["sends_per_s"]),
                }

    figures: dict[str, Any] = {
        "benchmark": "delivery",
        "latency_ms": LATENCY_MS,
        "per_channel": args.per_channel,
        "users": args.users,
        "concurrency": args.concurrency,
        "partitions": args.partitions,
        "busy_cores_before_start": idle_busy,
        "channels": results,
    }
    rows = []
    for name, r in results.items():
        c, sdk, raw = r["clarion"], r["sdk_alone"], r["ceiling"]
        rows.append((
            SPECS[name].label, c.get("deliveries_per_s"), c.get("steady_per_s"),
            sdk["sends_per_s"], raw["sends_per_s"], r["ratio"],
            f"{c['lost']} / {c['duplicates']}", c.get("worker_cpu"), sdk["client_cpu"],
            raw["client_cpu"], f"{c.get('machine_cpu')} / {sdk['machine_cpu']} / "
            f"{raw['machine_cpu']}",
        ))  # fmt: skip
    extras = "; ".join(
        f"{SPECS[n].label}: {r['clarion']['retried']} retried, "
        f"{r['clarion']['dead_lettered']} dead-lettered, "
        f"{r['sdk_alone']['failed']} SDK-alone and {r['ceiling']['failed']} ceiling failures"
        for n, r in results.items()
    )
    markdown = "\n\n".join([
        "# Delivery: deliveries/s per channel vs the sandbox's ceiling",
        f"{args.per_channel} deliveries per channel (lane high, {args.users} recipients, "
        f"{args.partitions} partitions) produced before one worker starts; "
        f"{LATENCY_MS} ms latency injected on every provider; "
        f"CLARION_SINK_CONCURRENCY={args.concurrency}, pacing 1e6/s. SDK alone: Clarion's "
        f"sender for the channel (the real SDK) called directly, {args.concurrency} in "
        f"flight (as many as the worker's sink keeps: more for SendGrid, whose mails share "
        f"requests as personalizations), no Kafka or Faust. Ceiling: a plain aiohttp "
        f"client (APNs: bare h2 over TLS), {args.concurrency} in flight. Both for "
        f"{args.ceiling_s} s after a "
        f"{args.ceiling_warmup} s warm-up, in the benchmark process; the sandbox runs in "
        f"its own process. Machine load before the start (broker idle): {idle_busy} cores.",
        markdown_table(HEADER, rows),
        "Clarion/s: accepted sends in the sandbox record / (last - first received_at); "
        "steady/s: the middle 80 % of them. CPU in cores; machine CPU is the whole "
        "machine's (2 cores here) during the Clarion / SDK-alone / ceiling phases: "
        "anything above what the measured processes use was someone else's load. "
        + extras + ".",
    ])  # fmt: skip
    return Report(figures, markdown)


# --------------------------------------------------------------------------- --sdk-only


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


async def sdk_only(args: argparse.Namespace, workdir: Path) -> Report:
    """Per channel, `repeat` times: the ceiling, then the SDK alone; no broker, no worker."""
    runs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    before = machine_busy()
    await asyncio.sleep(1)
    idle_busy = busy_cores(before, machine_busy())
    with sandbox_process() as sandbox:
        async with httpx.AsyncClient(timeout=30) as client:
            control = Control(client, sandbox.control)
            await control.slow_down_all(LATENCY_MS)
            for run in range(args.repeat):
                for name in args.channels:
                    spec = SPECS[name]
                    raw = await ceiling(spec, sandbox, control, args)
                    sdk = await sdk_alone(spec, sandbox, control, workdir / name, args)
                    log.info(
                        "run %d, %s: SDK alone %s/s, ceiling %s/s",
                        run + 1, spec.label, sdk["sends_per_s"], raw["sends_per_s"],
                    )  # fmt: skip
                    runs.setdefault(name, []).append((sdk, raw))
    rows, channels = [], {}
    for name, pairs in runs.items():
        sdk_rates = [s["sends_per_s"] for s, _ in pairs]
        raw_rates = [r["sends_per_s"] for _, r in pairs]
        # The median of the per-run ratios: each run's two loops saw the same machine load.
        ratios = [ratio(s["sends_per_s"], r["sends_per_s"]) for s, r in pairs]
        median = {
            "sdk_alone_per_s": _median(sdk_rates),
            "ceiling_per_s": _median(raw_rates),
            "ratio": _median(ratios),
            "sdk_alone_cpu": _median([s["client_cpu"] for s, _ in pairs]),
            "ceiling_cpu": _median([r["client_cpu"] for _, r in pairs]),
        }
        channels[name] = {"median": median, "runs": [{"sdk_alone": s, "ceiling": r}
                                                     for s, r in pairs]}  # fmt: skip
        rows.append((
            SPECS[name].label, median["sdk_alone_per_s"], median["ceiling_per_s"],
            median["ratio"], median["sdk_alone_cpu"], median["ceiling_cpu"],
            " / ".join(f"{s['machine_cpu']}, {r['machine_cpu']}" for s, r in pairs),
            sum(s["failed"] for s, _ in pairs), " ; ".join(
                f"{s} / {r}" for s, r in zip(sdk_rates, raw_rates, strict=True)),
        ))  # fmt: skip
    markdown = "\n\n".join([
        "# Delivery, SDK alone vs ceiling (--sdk-only)",
        f"Medians of {args.repeat} run(s); {LATENCY_MS} ms latency, {args.concurrency} in "
        f"flight, {args.ceiling_s} s after a {args.ceiling_warmup} s warm-up. Machine load "
        f"before the start: {idle_busy} cores. Settings: {args.settings or 'defaults'}.",
        markdown_table(SDK_ONLY_HEADER, rows),
    ])  # fmt: skip
    figures = {
        "benchmark": "delivery --sdk-only",
        "latency_ms": LATENCY_MS,
        "concurrency": args.concurrency,
        "repeat": args.repeat,
        "settings": args.settings,
        "busy_cores_before_start": idle_busy,
        "channels": channels,
    }
    return Report(figures, markdown)


def run_sdk_only(args: argparse.Namespace) -> int:
    """`--sdk-only`: no broker, so none of run_benchmark's setup; the table on stdout."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    # As the worker does (sinks/deliver.py): per-request INFO lines would be measured too.
    for noisy in ("httpx", "httpcore", "twilio", "hpack", "h2", "aioapns", "google"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="clarion-bench-sdk-only-") as tmp:
        report = asyncio.run(asyncio.wait_for(sdk_only(args, Path(tmp)), args.timeout))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "delivery-sdk-only.md").write_text(report.markdown.rstrip() + "\n")
    print(report.markdown, flush=True)
    print(json.dumps(report.figures), flush=True)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.delivery",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--per-channel", type=int, default=10_000, help="deliveries per channel (N)"
    )
    parser.add_argument(
        "--channels",
        default=",".join(PROVIDERS),
        help=f"comma-separated, of {','.join(PROVIDERS)} (push is fcm and apns)",
    )
    parser.add_argument("--users", type=int, default=5_000, help="recipients (and targets)")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--ceiling-s", type=float, default=8.0)
    parser.add_argument("--ceiling-warmup", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument(
        "--stall", type=float, default=30.0, help="give up on a channel after this long idle"
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a provider setting for the SDK alone and the worker, e.g. "
        "webhook_max_connections=50 (CLARION_WEBHOOK_MAX_CONNECTIONS); repeatable",
    )
    parser.add_argument(
        "--sdk-only",
        action="store_true",
        help="only the ceiling and the SDK alone per channel: no broker, no worker",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="--sdk-only: runs per channel (medians shown)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="stop everything after this many seconds (default: 60 + per channel "
        "60 + the two closed loops + N/60, i.e. at least 60 deliveries/s)",
    )
    args = parser.parse_args(argv)
    args.channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    unknown = [c for c in args.channels if c not in SPECS]
    if unknown or not args.channels:
        parser.error(f"unknown channels {unknown}; use some of {','.join(PROVIDERS)}")
    pairs = [item.partition("=") for item in args.setting]
    if any(not sep or not name for name, sep, _ in pairs):
        parser.error("--setting takes NAME=VALUE")
    args.settings = {name.strip().lower(): value for name, _, value in pairs}
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.timeout is None:
        per = 60 + 2 * (args.ceiling_warmup + args.ceiling_s) + args.per_channel / 60
        if args.sdk_only:
            per = args.repeat * (30 + 2 * (args.ceiling_warmup + args.ceiling_s))
        args.timeout = 60 + len(args.channels) * per
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sdk_only:
        return run_sdk_only(args)
    return run_benchmark("delivery", lambda b, w: benchmark(args, b, w), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
