"""A worker wired to the provider sandbox, for the delivery tests (real SDKs, real broker)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord

from devenv.sandbox import Sandbox
from devenv.sandbox.env import provider_env
from devenv.sandbox.record import SendRecord
from streams.catalog import CONTACTS
from tests.integration.conftest import Pipeline, start_pipeline
from tests.integration.kafka_io import collect, produce_json

# Retries fast enough for tests: 0.2 s, 0.4 s, … capped at 1 s, six tries in all. Provider
# pacing out of the way (its defaults are real quotas, e.g. Twilio 100 messages/s).
FAST_RETRIES = {
    "CLARION_RETRY_BASE_S": "0.2",
    "CLARION_RETRY_CAP_S": "1",
    "CLARION_RETRY_MAX_ATTEMPTS": "6",
    "CLARION_SEND_TIMEOUT_S": "2",
} | {f"CLARION_PACE_{p}_PER_S": "100000" for p in ("FCM", "APNS", "SENDGRID", "TWILIO", "WEBHOOK")}


@contextmanager
def delivering_pipeline(
    bootstrap: str, tmp: Path, sandbox: Sandbox, **extra_env: str
) -> Iterator[Pipeline]:
    env = provider_env(sandbox, tmp / "providers") | FAST_RETRIES | extra_env
    pipeline = start_pipeline(bootstrap, tmp, **env)
    # Bounces come back through the worker's own Event Webhook endpoint.
    sandbox.sendgrid_event_webhook_url = f"{pipeline.url}/providers/sendgrid/events"
    try:
        yield pipeline
    finally:
        pipeline.worker.stop()


async def set_contacts(p: Pipeline, uid: str, **points: Any) -> dict[str, Any]:
    """Produce a user's contact points and wait until the worker's table has them."""
    contacts = {"user_id": uid, **points}
    await produce_json(p.bootstrap, p.topic(CONTACTS), contacts, uid)
    got = await collect(
        p.bootstrap,
        [f"{p.app_id}-contacts-changelog"],
        until=lambda kept: len(kept) >= 1,
        keep=lambda r: r.key == uid.encode(),
    )
    assert got, "contacts never reached the table"
    return contacts


def apns_token() -> str:
    return secrets.token_hex(32)


def fcm_token() -> str:
    return "fcm-" + secrets.token_hex(12)


def phone() -> str:
    return "+1555" + "".join(str(secrets.randbelow(10)) for _ in range(7))


def email() -> str:
    return f"{secrets.token_hex(5)}@example.com"


async def wait_for_sends(
    sandbox: Sandbox,
    provider: str,
    target: str,
    n: int = 1,
    timeout_s: float = 30.0,
) -> list[SendRecord]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        sends = sandbox.sends(provider, target)
        if len(sends) >= n or asyncio.get_running_loop().time() > deadline:
            return sends
        await asyncio.sleep(0.1)


async def records_where(
    pipeline: Pipeline,
    topic: str,
    match: Callable[[ConsumerRecord[bytes, bytes]], bool],
    n: int = 1,
    timeout_s: float = 30.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    return await collect(
        pipeline.bootstrap,
        [pipeline.topic(topic)],
        until=lambda got: len(got) >= n,
        keep=match,
        timeout_s=timeout_s,
    )


def for_user(user: str) -> Callable[[ConsumerRecord[bytes, bytes]], bool]:
    return lambda r: r.key == user.encode()


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str:
    return dict(record.headers)[name].decode()


def value(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
    assert record.value is not None
    return dict(json.loads(record.value))
