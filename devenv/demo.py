"""`clarion demo`: a local broker (unless one is configured), one worker, sample traffic."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from rich.console import Console

from devenv.kafka import kafka_broker
from devenv.traffic import produce_traffic, seed_profiles, user_ids
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


async def run_demo(duration: float | None, rate: float) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    var = Path("var/demo")
    fresh_broker = not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with kafka_broker() as bootstrap:
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
        )
        worker = WorkerProcess(env, var / "worker.log")
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
            console.print(
                f"Other channels (push, email, SMS, webhook) go to {env['CLARION_OUTBOX_PATH']}"
                f" and {worker.log_path}; bad events to {settings.topic_prefix}dlq.events.\n"
                "Ctrl-C stops the traffic, the worker and the broker."
            )
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
            await producer.start()
            follower = asyncio.create_task(follow_inapp(worker.base_url, token, "alice"))
            try:
                rng = random.Random()
                await seed_profiles(producer, settings.topic_prefix, users, rng)
                sent = await produce_traffic(
                    producer, settings.topic_prefix, users, rate, duration, rng
                )
                console.print(f"produced {sent} events")
            except (asyncio.CancelledError, KeyboardInterrupt):
                console.print("stopping…")
            finally:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)
                await producer.stop()
