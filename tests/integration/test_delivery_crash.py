"""kill -9 with more than 100,000 deliveries in flight across channels (the sandbox slowed
down), restart, drain: nothing lost, and no more duplicates than sends in flight at the kill.

"In flight at the kill" is measured, not assumed: a send the sandbox accepted whose
idempotency-ledger entry had not reached the ledger's changelog topic when the worker
died. Those are the only sends a restarted worker cannot know about; any duplicate beyond
them would be a send the ledger failed to prevent.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from devenv.sandbox import Sandbox
from devenv.sandbox.env import provider_env
from schemas.common import Channel, Lane
from streams.catalog import DLQ_DELIVERIES, RECEIPTS, delivery_topic
from tests.factories import delivery_bytes
from tests.integration.conftest import start_pipeline
from tests.integration.delivery_env import FAST_RETRIES, apns_token, email, fcm_token, phone
from tests.integration.kafka_io import collect

USERS = 2_000
PER_CHANNEL = {
    "fcm": 30_000,
    "apns": 20_000,
    "sendgrid": 20_000,
    "twilio": 20_000,
    "webhook": 20_000,
}
IN_FLIGHT_AT_KILL = 100_000
SLOW_MS = 200


def plan(sandbox: Sandbox) -> list[tuple[str, bytes, str]]:
    """(topic, record, delivery id) for every delivery, spread over USERS users."""
    users = [f"crash-{u}" for u in range(USERS)]
    targets = {
        u: {
            "fcm": fcm_token(),
            "apns": apns_token(),
            "sendgrid": email(),
            "twilio": phone(),
            "webhook": sandbox.webhook_url(u),
        }
        for u in users
    }
    channel = {"fcm": Channel.PUSH, "apns": Channel.PUSH, "sendgrid": Channel.EMAIL,
               "twilio": Channel.SMS, "webhook": Channel.WEBHOOK}  # fmt: skip
    out = []
    for provider, count in PER_CHANNEL.items():
        ch = channel[provider]
        topic = delivery_topic(ch, Lane.HIGH)
        for i in range(count):
            u = users[i % USERS]
            platform = provider if ch is Channel.PUSH else None
            raw = delivery_bytes(ch.value, u, targets[u][provider], platform=platform)
            out.append((topic, raw, u))
    return out


@pytest.mark.timeout(1200)
async def test_kill_9_with_100k_in_flight_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    def report(line: str) -> None:
        with capfd.disabled():  # the figures show on the terminal, also in CI
            print(line, flush=True)

    import json

    with Sandbox() as sandbox:
        records = plan(sandbox)
        expected = {json.loads(raw)["delivery_id"] for _t, raw, _u in records}
        assert len(expected) == len(records) >= IN_FLIGHT_AT_KILL
        for provider in PER_CHANNEL:
            sandbox.inject(provider, latency_ms=SLOW_MS)
        # Production retry policy (a timeout under this load is not a reason to give up).
        env = provider_env(sandbox, tmp_path / "providers") | {
            k: v for k, v in FAST_RETRIES.items() if k.startswith("CLARION_PACE_")
        }
        p = start_pipeline(kafka_bootstrap, tmp_path, **env)
        try:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=20)
            await producer.start()
            try:
                futures = [
                    await producer.send(p.topic(t), raw, key=u.encode()) for t, raw, u in records
                ]
                where = {
                    json.loads(raw)["delivery_id"]: (meta.topic, meta.partition, meta.offset)
                    for (_t, raw, _u), meta in zip(
                        records, await asyncio.gather(*futures), strict=True
                    )
                }
            finally:
                await producer.stop()

            # Kill once the worker is sending at full tilt.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if len(sandbox.sends()) >= 3_000:
                    break
                await asyncio.sleep(0.05)
            p.worker.kill()
            await asyncio.sleep(2 * SLOW_MS / 1000 + 1)  # the sandbox finishes what it had
            accepted = {s.delivery_id for s in sandbox.sends()}
            ledger = await collect(
                p.bootstrap,
                [f"{p.app_id}-ledger-changelog"],
                until=lambda kept: False,
                timeout_s=5,
            )
            ledgered = {r.key.decode().split("\x1f", 1)[1] for r in ledger if r.key}
            in_flight = len(accepted - ledgered)
            pending = len(expected) - len(accepted)
            report(
                f"crash: {len(expected)} deliveries; at the kill {len(accepted)} sent, "
                f"{pending} not yet sent, {in_flight} sent but not yet in the ledger"
            )
            assert pending >= IN_FLIGHT_AT_KILL

            sandbox.clear_faults()  # drain at full speed
            started = time.monotonic()
            p.worker.start()
            p.worker.wait_ready()
            # Drain while it makes progress (the rate depends on the machine).
            last, stalled_since = -1, time.monotonic()
            while time.monotonic() - stalled_since < 60:
                done = len({s.delivery_id for s in sandbox.sends()} & expected)
                if done == len(expected):
                    break
                if done != last:
                    last, stalled_since = done, time.monotonic()
                    print(f"crash: drain {time.monotonic() - started:.0f} s: {done}", flush=True)
                await asyncio.sleep(5)
            await asyncio.sleep(3)  # a late resend would show up as a duplicate
            drained_s = time.monotonic() - started
        finally:
            p.worker.stop()
        counts = Counter(s.delivery_id for s in sandbox.sends())
        dead = await collect(
            p.bootstrap, [p.topic(DLQ_DELIVERIES)], until=lambda k: False, timeout_s=3
        )
        dead_ids = {json.loads(r.value)["delivery_id"] for r in dead if r.value}
        missing = sorted(expected - set(counts) - dead_ids)
        if missing:  # say whether the group committed past it (lost) or not (stuck)
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
            await admin.start()
            try:
                committed = await admin.list_consumer_group_offsets(p.app_id)
            finally:
                await admin.close()
            trail = await collect(
                p.bootstrap, [p.topic(RECEIPTS)], until=lambda k: False, timeout_s=10
            )
            unnamed = sum(1 for s in sandbox.sends() if s.delivery_id is None)
            print(f"crash: sandbox records without a delivery id: {unnamed}", flush=True)
            for m in missing[:10]:
                topic, partition, _offset = where[m]
                at = committed.get(TopicPartition(topic, partition))
                statuses = [
                    (json.loads(r.value)["status"], json.loads(r.value).get("reason"))
                    for r in trail
                    if r.value and m.encode() in r.value
                ]
                print(
                    f"crash: never sent {m} at {where[m]}; group committed {at}; "
                    f"receipts {statuses}",
                    flush=True,
                )
    lost = expected - set(counts) - dead_ids
    duplicates = sum(n - 1 for n in counts.values())
    report(
        f"crash: lost {len(lost)}, dead-lettered {len(dead_ids)}, "
        f"duplicates {duplicates} (bound: {in_flight} in flight), "
        f"drained {len(expected) - len(accepted)} in {drained_s:.0f} s"
    )
    assert not lost
    assert duplicates <= in_flight
