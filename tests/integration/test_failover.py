"""kill -9 of one of two workers while payments flow: how long the critical lane stands still.

The killed worker's partitions move to the standby once its consumer-group session expires
(CLARION_BROKER_SESSION_TIMEOUT_S, 6 s; Faust's default of 60 s stalled them a minute). The
figure is the largest gap between consecutive first in-app deliveries (receipts) of one
recipient, each recipient on its own partition, so the partitions of the killed worker show
their whole stall. Goal: at most 10 s; asserted with room for a busy machine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from logic.ids import notification_id
from logic.partitioning import partition_of
from streams.catalog import RECEIPTS
from tests.factories import event_dict
from tests.integration.conftest import Figure, Pipeline, drill_size, ready, start_pipeline
from tests.integration.kafka_io import collect

pytestmark = pytest.mark.integration

PARTITIONS = 4
RATE_PER_S = 20
BEFORE_KILL_S = 8
AFTER_KILL_S = drill_size(30, 20)  # the gap is ~7 s; a quick run watches 20 s
GOAL_S = 10.0
# What the test asserts: the goal, with room for a machine shared with other work.
BOUND_S = 20.0


def one_user_per_partition(tag: str) -> list[str]:
    users: dict[int, str] = {}
    i = 0
    while len(users) < PARTITIONS:
        users.setdefault(partition_of(f"{tag}-{i}", PARTITIONS), f"{tag}-{i}")
        i += 1
    return [users[p] for p in range(PARTITIONS)]


async def pay_steadily(p: Pipeline, users: list[str], seconds: float, sent: list[str]) -> None:
    """RATE_PER_S payments a second, round robin over `users`; their ids go to `sent`."""
    producer = AIOKafkaProducer(bootstrap_servers=p.bootstrap)
    await producer.start()
    try:
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < seconds:
            user = users[i % len(users)]
            payment = event_dict("payment", recipient_id=user)
            await producer.send_and_wait(
                p.topic("events.payments"), json.dumps(payment).encode(), key=user.encode()
            )
            sent.append(notification_id(payment["event_id"], user))
            i += 1
            await asyncio.sleep(max(0.0, start + i / RATE_PER_S - time.monotonic()))
    finally:
        await producer.stop()


def largest_gaps(times: dict[str, list[float]], since: float) -> dict[str, float]:
    """Per recipient: the largest gap between consecutive deliveries from `since` on
    (the last delivery before `since` counts as the gap's start)."""
    gaps = {}
    for user, ts in times.items():
        ts = sorted(ts)
        before = [t for t in ts if t < since]
        after = [t for t in ts if t >= since]
        chain = before[-1:] + after
        gaps[user] = max((b - a for a, b in itertools.pairwise(chain)), default=0.0)
    return gaps


@pytest.mark.timeout(600)
async def test_critical_lane_gap_after_kill_9_with_a_standby(
    kafka_bootstrap: str, tmp_path: Path, figure: Figure
) -> None:
    run = uuid.uuid4().hex[:8]
    group = {"prefix": f"t{run}.", "app_id": f"clarion-t{run}"}
    workers: list[Pipeline] = []
    try:
        for name in ("w1", "w2"):
            workers.append(
                start_pipeline(
                    kafka_bootstrap, tmp_path / name, partitions=PARTITIONS, wait=False, **group
                )
            )
        ready(*workers)
        first, victim = workers
        users = one_user_per_partition(f"f{run}")
        sent: list[str] = []
        # Both workers hold partitions once the second is ready; let the flow settle first.
        flow = asyncio.create_task(pay_steadily(first, users, BEFORE_KILL_S + AFTER_KILL_S, sent))
        await asyncio.sleep(BEFORE_KILL_S)
        killed_wall = time.time()
        victim.worker.kill()
        await flow

        expected = set(sent)

        def all_delivered(kept: list) -> bool:  # type: ignore[type-arg]
            return {json.loads(r.value)["notification_id"] for r in kept} >= expected

        records = await collect(
            first.bootstrap,
            [first.topic(RECEIPTS)],
            until=all_delivered,
            keep=lambda r: (
                r.value is not None
                and r.key is not None
                and r.key.decode() in users
                and json.loads(r.value)["channel"] == "in_app"
                and json.loads(r.value)["status"] in ("sent", "delivered")
            ),
            timeout_s=120,
        )
        first_delivery: dict[str, tuple[str, float]] = {}  # notification -> (user, time)
        for r in sorted(records, key=lambda r: r.timestamp):
            v = json.loads(r.value)
            first_delivery.setdefault(v["notification_id"], (v["recipient_id"], r.timestamp / 1e3))
        times: dict[str, list[float]] = {u: [] for u in users}
        for user, at in first_delivery.values():
            times[user].append(at)
        gaps = largest_gaps(times, killed_wall)
        worst = max(gaps.values())
        lost = expected - set(first_delivery)
        figure(
            f"failover: kill -9 of one of two workers, payments at {RATE_PER_S}/s: "
            f"largest critical in-app gap {worst:.1f} s (goal {GOAL_S:.0f} s); per "
            f"partition {[round(gaps[u], 1) for u in users]}; {len(expected)} payments, "
            f"{len(lost)} not delivered"
        )
        assert not lost, f"{len(lost)} payments never delivered in-app"
        # The killed worker held some partitions: their stall is in the figure.
        assert worst > 1.0, "no partition stalled: was the second worker holding any?"
        assert worst <= BOUND_S, f"critical lane stood still {worst:.1f} s after a kill -9"
    finally:
        for w in workers:
            w.worker.stop()
