"""`clarion demo`: a local broker (unless one is configured), the provider sandbox, one
worker delivering through the real SDKs to it, and sample traffic."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console

from devenv.kafka import kafka_broker
from devenv.sandbox import Sandbox
from devenv.sandbox.env import provider_env
from devenv.traffic import (
    SHOWCASE,
    produce_traffic,
    seed_profiles,
    send_event,
    showcase_events,
    user_ids,
)
from devenv.worker import WorkerProcess, worker_env
from logic.tokens import issue_token
from streams.settings import get_settings

console = Console()


async def follow_inapp(base_url: str, token: str, user: str) -> None:
    """Show one user's in-app notifications as they arrive, through the real SSE endpoint."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(timeout=None) as http,
        http.stream("GET", f"{base_url}/inapp/stream", headers=headers) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                item = json.loads(line[6:])
                console.print(
                    f"[cyan]{user} · in-app · {item['lane']}[/] {item['title']}: {item['body']}"
                )


DEMO_WINDOW_S = 5
DEMO_CONFIRM_WITHIN_S = 8
PROVIDERS = ("fcm", "apns", "sendgrid", "twilio", "webhook")
# Every provider has a send this soon after the showcase events: critical ones go at once,
# the comment's window closes within DEMO_WINDOW_S (plus a tick); the rest is margin for a
# busy machine. `clarion demo` says so when it happens (and if it does not, which).
CHANNELS_WITHIN_S = DEMO_WINDOW_S + 25
# How long the demo waits for the worker's tables to hold the seeded profiles.
PROFILES_WITHIN_S = 60


def demo_rules(var: Path) -> Path:
    """The packaged rules at demo speed: 5 s aggregation windows and escalation after 8 s,
    so every channel shows up within half a minute. Same categories, lanes and channels."""
    from importlib import resources

    text = resources.files("logic").joinpath("rules.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^window_s = \d+", f"window_s = {DEMO_WINDOW_S}", text)
    text = re.sub(
        r"(?m)^confirm_within_s = \d+", f"confirm_within_s = {DEMO_CONFIRM_WITHIN_S}", text
    )
    path = var / "rules.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


class ProfileWatch:
    """Reads the preferences and contacts changelogs from their current end, so the demo
    knows when the worker's tables hold the profiles it seeds: an event routed before its
    recipient's contact points are in has nowhere to go."""

    # Faust names a table's changelog "<app id>-<table>-changelog" (tables/state.py).
    TABLES = ("preferences", "contacts")

    def __init__(self, bootstrap: str, app_id: str, partitions: int) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.tps = [
            TopicPartition(f"{app_id}-{table}-changelog", p)
            for table in self.TABLES
            for p in range(partitions)
        ]

    async def __aenter__(self) -> ProfileWatch:
        await self.consumer.start()
        self.consumer.assign(self.tps)
        for tp, end in (await self.consumer.end_offsets(self.tps)).items():
            self.consumer.seek(tp, end)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def wait(self, users: list[str], timeout_s: float) -> list[str]:
        """Until every table has a record for every user; returns what is still missing."""
        missing = {(table, u.encode()) for table in self.TABLES for u in users}
        deadline = asyncio.get_running_loop().time() + timeout_s
        while missing and asyncio.get_running_loop().time() < deadline:
            batch = await self.consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                table = tp.topic.rsplit("-", 2)[-2]
                missing -= {(table, r.key) for r in records if r.key is not None}
        return sorted(f"{table}/{key.decode()}" for table, key in missing)


async def announce_channels(sandbox: Sandbox, started: float) -> None:
    """Print when each provider gets its first send, then that all have (or, past
    CHANNELS_WITHIN_S, which have not). Printed raw: the demo's test reads these lines."""
    loop = asyncio.get_running_loop()
    first: dict[str, float] = {}
    late_said = False
    while len(first) < len(PROVIDERS):
        elapsed = loop.time() - started
        for provider in sorted({s.provider for s in sandbox.sends()} - set(first)):
            first[provider] = elapsed
            print(f"first {provider} send {elapsed:.1f} s after the first events", flush=True)
        if not late_said and elapsed > CHANNELS_WITHIN_S and len(first) < len(PROVIDERS):
            late_said = True
            missing = [p for p in PROVIDERS if p not in first]
            print(f"no send within {CHANNELS_WITHIN_S} s for: {', '.join(missing)}", flush=True)
        await asyncio.sleep(0.2)
    print(f"every channel reached its provider within {max(first.values()):.1f} s", flush=True)


async def report_sends(sandbox: Sandbox, every_s: float = 10.0) -> None:
    """Every few seconds, what the providers (the sandbox) have accepted so far."""
    while True:
        await asyncio.sleep(every_s)
        counts = Counter(s.provider for s in sandbox.sends())
        summary = ", ".join(
            f"{p} {counts[p]}" for p in ("fcm", "apns", "sendgrid", "twilio", "webhook")
        )
        console.print(f"[magenta]providers accepted[/] {summary}")


async def run_demo(duration: float | None, rate: float) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    var = Path("var/demo")
    fresh_broker = not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with kafka_broker() as bootstrap, Sandbox() as sandbox:
        if fresh_broker:
            # A new local broker has none of the old offsets: old table state would lie.
            shutil.rmtree(var / "data", ignore_errors=True)
        env = worker_env(
            bootstrap,
            prefix=settings.topic_prefix,
            app_id=settings.app_id,
            partitions=settings.partitions,
            workdir=var,
            web_port=settings.web_port if "CLARION_WEB_PORT" in os.environ else None,
            extra=provider_env(sandbox, var / "providers")
            | {"CLARION_RULES_PATH": os.environ.get("CLARION_RULES_PATH") or str(demo_rules(var))},
        )
        worker = WorkerProcess(env, var / "worker.log")
        sandbox.sendgrid_event_webhook_url = f"{worker.base_url}/providers/sendgrid/events"
        console.print(f"[bold]Kafka[/] {bootstrap} · starting worker (log: {worker.log_path})")
        with worker:
            await asyncio.to_thread(worker.wait_ready)
            users = user_ids(10)
            token = issue_token(
                "alice",
                settings.inapp_token_secret.get_secret_value(),
                timedelta(hours=12),
                datetime.now(UTC),
            )
            console.print("[bold green]Clarion is running.[/] Watch alice's in-app notifications:")
            # Printed raw: a wrapped URL cannot be pasted.
            print(f"  curl -N '{worker.base_url}/inapp/stream?token={token}'", flush=True)
            console.print("or open her inbox page in a browser:")
            print(f"  {worker.base_url}/inbox?token={token}", flush=True)
            console.print(
                "Push (FCM, APNs), email (SendGrid), SMS (Twilio) and webhooks go through the "
                f"real SDKs to the provider sandbox ({sandbox.base_url}/_sandbox/sends); "
                f"bad events to {settings.topic_prefix}dlq.events, failed deliveries to "
                f"{settings.topic_prefix}dlq.deliveries.\n"
                "Ctrl-C stops the traffic, the worker, the sandbox and the broker."
            )
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
            await producer.start()
            follower = asyncio.create_task(follow_inapp(worker.base_url, token, "alice"))
            reporter = asyncio.create_task(report_sends(sandbox))
            announcer: asyncio.Task[None] | None = None
            try:
                rng = random.Random()
                async with ProfileWatch(bootstrap, settings.app_id, settings.partitions) as w:
                    await seed_profiles(
                        producer, settings.topic_prefix, users, rng, sandbox.webhook_url("")
                    )
                    missing = await w.wait(users, PROFILES_WITHIN_S)
                if missing:
                    console.print(f"[yellow]profiles not in the tables yet:[/] {missing}")
                console.print("First, one event for each channel:")
                for kind, to, shows in SHOWCASE:
                    console.print(f"  {kind} to {to}: {shows}")
                announcer = asyncio.create_task(
                    announce_channels(sandbox, asyncio.get_running_loop().time())
                )
                for event in showcase_events(rng):
                    await send_event(producer, settings.topic_prefix, event)
                await producer.flush()
                sent = await produce_traffic(
                    producer, settings.topic_prefix, users, rate, duration, rng
                )
                console.print(f"produced {sent} events")
            except (asyncio.CancelledError, KeyboardInterrupt):
                console.print("stopping…")
            finally:
                tasks = [t for t in (follower, reporter, announcer) if t is not None]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                counts = Counter(s.provider for s in sandbox.sends())
                # Printed raw: rich would wrap it at the terminal's width.
                print(f"providers accepted in all: {dict(sorted(counts.items()))}", flush=True)
                await producer.stop()
