"""Three `clarion worker` processes in one group; one is killed -9 mid-flight and a new one
joins: no notification lost, each aggregation window flushed exactly once, and a broadcast
fan-out completes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from logic.ids import notification_id
from logic.partitioning import partition_of
from schemas.common import Channel, Lane
from streams.catalog import delivery_topic
from tests.factories import event_dict
from tests.integration.conftest import FAST_RULES, Pipeline, start_pipeline
from tests.integration.kafka_io import collect
from tests.integration.test_fanout import broadcast, follow_all, notified, wait_for_graph

pytestmark = pytest.mark.integration

PARTITIONS = 6
WINDOW_S = 15
LIKES = 300
PAYMENTS = 40
FANS = 1200


def rules_with_like_window(tmp: Path) -> Path:
    text = FAST_RULES.read_text()
    like, end = text.index("[categories.like]"), text.index("[categories.comment]")
    path = tmp / "rules.toml"
    path.write_text(
        text[:like] + text[like:end].replace("window_s = 3", f"window_s = {WINDOW_S}") + text[end:]
    )
    return path


def one_user_per_partition(tag: str) -> list[str]:
    users: dict[int, str] = {}
    i = 0
    while len(users) < PARTITIONS:
        users.setdefault(partition_of(f"{tag}-{i}", PARTITIONS), f"{tag}-{i}")
        i += 1
    return list(users.values())


async def produce_traffic(p: Pipeline, users: list[str]) -> list[str]:
    """LIKES likes and PAYMENTS payments per user; returns the payments' notification ids."""
    payments: list[str] = []
    producer = AIOKafkaProducer(bootstrap_servers=p.bootstrap, linger_ms=20)
    await producer.start()
    try:
        now = datetime.now(UTC).isoformat()
        for user in users:
            for i in range(LIKES):
                like = event_dict(
                    "like", recipient_id=user, actor_id=f"a{i}", occurred_at=now,
                    object={"kind": "photo", "id": "p1"},
                )  # fmt: skip
                await producer.send(
                    p.topic("events.social"), json.dumps(like).encode(), key=user.encode()
                )
            for _ in range(PAYMENTS):
                payment = event_dict("payment", recipient_id=user)
                payments.append(notification_id(payment["event_id"], user))
                await producer.send(
                    p.topic("events.payments"), json.dumps(payment).encode(), key=user.encode()
                )
        await producer.flush()
    finally:
        await producer.stop()
    return payments


@pytest.mark.timeout(900)
async def test_kill_one_of_three_workers_and_add_a_fourth(
    kafka_bootstrap: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rules = rules_with_like_window(tmp_path)
    run = uuid.uuid4().hex[:8]
    group = {"prefix": f"t{run}.", "app_id": f"clarion-t{run}"}
    env = {
        "CLARION_RULES_PATH": str(rules),
        "CLARION_FANOUT_PAGE_SIZE": "20",
        "CLARION_FANOUT_PER_S": "20",
        "CLARION_FANOUT_STALL_S": "15",
    }
    workers: list[Pipeline] = []
    try:
        for name in ("w1", "w2", "w3"):
            workers.append(
                start_pipeline(
                    kafka_bootstrap, tmp_path / name, partitions=PARTITIONS, **group, **env
                )
            )
        first = workers[0]
        users = one_user_per_partition(f"u{run}")
        star = f"star-{run}"
        fans = [f"fan{i:05d}" for i in range(FANS)]
        await follow_all(first, star, fans)
        await wait_for_graph(first, FANS)

        # Start of a window, so every user's likes fall in one window.
        await asyncio.sleep(WINDOW_S - time.time() % WINDOW_S + 0.5)
        payments = await produce_traffic(first, users)
        broadcast_id = await broadcast(first, star)
        await notified(first, broadcast_id, FANS // 10, timeout_s=60)  # fan-out under way

        workers[1].worker.kill()
        workers.append(
            start_pipeline(kafka_bootstrap, tmp_path / "w4", partitions=PARTITIONS, **group, **env)
        )

        in_app = [
            delivery_topic(Channel.IN_APP, Lane.SOCIAL),
            delivery_topic(Channel.IN_APP, Lane.CRITICAL),
        ]
        expected_payments = set(payments)

        def everything_out(kept: list) -> bool:  # type: ignore[type-arg]
            values = [json.loads(r.value) for r in kept]
            liked = {v["recipient_id"] for v in values if v["category"] == "like"}
            paid = {v["notification_id"] for v in values if v["category"] == "payment"}
            return liked >= set(users) and paid >= expected_payments

        await collect(
            first.bootstrap, [first.topic(t) for t in in_app], until=everything_out,
            timeout_s=300,
        )  # fmt: skip
        await asyncio.sleep(WINDOW_S)  # a second flush of a window would be out by now
        records = await collect(
            first.bootstrap, [first.topic(t) for t in in_app], until=lambda kept: False,
            timeout_s=10,
        )  # fmt: skip
        deliveries = [json.loads(r.value) for r in records]
        like_counts: dict[str, list[int]] = {}
        for d in deliveries:
            if d["category"] == "like":
                like_counts.setdefault(d["recipient_id"], []).append(d["count"])
        paid = Counter(d["notification_id"] for d in deliveries if d["category"] == "payment")
        fanned = await notified(first, broadcast_id, FANS, timeout_s=300)

        with capfd.disabled():
            print(
                f"\nthree workers, one killed, one added: payments {len(paid)}/"
                f"{len(expected_payments)} delivered in-app ({sum(paid.values()) - len(paid)} "
                f"redelivered copies); like windows {like_counts}; fan-out {len(fanned)}/{FANS} "
                f"({sum(fanned.values()) - len(fanned)} duplicates)"
            )
        assert set(paid) == expected_payments, "a payment notification was lost"
        assert like_counts == {u: [LIKES] for u in users}, "a window flushed twice or partly"
        assert set(fanned) == set(fans), "the fan-out did not complete"
    finally:
        for w in workers:
            w.worker.stop()
