"""Provider pacing is global (issue 13): three workers of one group, FCM paced at one rate
for the whole deployment (CLARION_PACE_FCM_PER_S), each worker at its share by the push
delivery partitions it owns (sinks/pacers.py).

Measured from the sandbox's own record of the sends it accepted (its clock, per send): the
aggregate rate over a window in the steady middle, while all three workers own partitions
(their `clarion_provider_pace_per_s` gauges are all positive and add up to the rate, the
same before and after the window), is within ±5 % of the setting. Under the old meaning each
worker paced the whole rate, up to three times the quota: run with CLARION_PACE_SCOPE=worker
in the environment (the workers inherit it) and this test fails, the backlog drained faster
than the rate allows.

The default rate, 60/s, is well within what a shared 2-core machine sustains through FCM's
SDK with three workers, the broker and the sandbox on it (one worker sends ~160 FCM/s on a
whole core, benchmarks/RESULTS.md), so the pacer and not the CPU is what holds the rate: the
issue's 1,000/s needs ~6 cores of workers (CLARION_PACING_DRILL_PER_S=1000 on such a machine).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from devenv.sandbox import Sandbox
from devenv.sandbox.env import provider_env
from logic.partitioning import partition_of
from schemas.common import Channel, Lane
from streams.catalog import delivery_topic
from tests.factories import delivery_bytes
from tests.integration.conftest import Figure, Pipeline, drill_size, ready, start_pipeline
from tests.integration.delivery_env import fcm_token

pytestmark = pytest.mark.integration

WORKERS = 3
# 2 partitions each when the assignor splits evenly; the shares hold for any split.
PARTITIONS = 6
RATE = float(os.environ.get("CLARION_PACING_DRILL_PER_S", "60"))
SCOPE = os.environ.get("CLARION_PACE_SCOPE", "group")  # the workers inherit it
TOLERANCE = 0.05
# The backlog: this many seconds of sends at the rate, the same number on every partition, so
# every partition (whoever owns it) drains at rate / partitions and all run dry together.
WORK_S = drill_size(90, 40)
DELIVERIES = int(RATE * WORK_S) // PARTITIONS * PARTITIONS
USERS_PER_PARTITION = 50
# The window: after the first sends (the producer still filling, the buckets' first bursts),
# and ending well before the backlog would run out at the rate.
SETTLE_S = 5.0
WINDOW_S = WORK_S - SETTLE_S - 10.0


def users_by_partition() -> list[list[str]]:
    users: list[list[str]] = [[] for _ in range(PARTITIONS)]
    i = 0
    while min(len(u) for u in users) < USERS_PER_PARTITION:
        user = f"pace-{i}"
        users[partition_of(user, PARTITIONS)].append(user)
        i += 1
    return [u[:USERS_PER_PARTITION] for u in users]


def plan() -> list[tuple[str, bytes]]:
    """(user, delivery) for DELIVERIES FCM pushes, round-robin over the partitions."""
    users = users_by_partition()
    tokens = {u: fcm_token() for part in users for u in part}
    out = []
    for i in range(DELIVERIES):
        part = users[i % PARTITIONS]
        user = part[(i // PARTITIONS) % USERS_PER_PARTITION]
        out.append((user, delivery_bytes("push", user, tokens[user], platform="fcm")))
    return out


async def scrape(client: httpx.AsyncClient, worker: Pipeline) -> dict[str, float]:
    """The worker's FCM pace (gauge) and FCM sends accepted (counter, lane high)."""
    text = (await client.get(f"{worker.url}/metrics")).text
    found = {"pace": math.nan, "sent": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("provider") != "fcm":
                continue
            if s.name == "clarion_provider_pace_per_s":
                found["pace"] = s.value
            elif s.name == "clarion_provider_sends_total" and s.labels.get("outcome") == "sent":
                found["sent"] += s.value
    return found


async def paces(client: httpx.AsyncClient, workers: list[Pipeline]) -> list[float]:
    return [(await scrape(client, w))["pace"] for w in workers]


async def wait_for_shares(
    client: httpx.AsyncClient, workers: list[Pipeline], timeout_s: float = 180.0
) -> list[float]:
    """Block until every worker owns push partitions and the paces add up to the rate (every
    worker its whole rate with the old meaning), the same on two looks a second apart."""
    expected = RATE * (WORKERS if SCOPE == "worker" else 1)
    deadline = time.monotonic() + timeout_s
    last: list[float] = []
    while time.monotonic() < deadline:
        now = await paces(client, workers)
        settled = all(p > 0 for p in now) and math.isclose(sum(now), expected, rel_tol=1e-6)
        if settled and now == last:
            return now
        last = now
        await asyncio.sleep(1.0)
    raise AssertionError(f"the workers' FCM paces never settled at {expected}/s in all: {last}")


@pytest.mark.timeout(900)
async def test_three_workers_pace_fcm_at_one_global_rate(
    kafka_bootstrap: str, tmp_path: Path, figure: Figure
) -> None:
    records = plan()
    expected = {json.loads(raw)["delivery_id"] for _u, raw in records}
    assert len(expected) == DELIVERIES
    run = uuid.uuid4().hex[:8]
    group = {"prefix": f"t{run}.", "app_id": f"clarion-t{run}"}
    with Sandbox() as sandbox:
        env = provider_env(sandbox, tmp_path / "providers") | {"CLARION_PACE_FCM_PER_S": str(RATE)}
        workers: list[Pipeline] = []
        try:
            for i in range(WORKERS):
                workdir = tmp_path / f"w{i}"
                workdir.mkdir()
                workers.append(
                    start_pipeline(
                        kafka_bootstrap, workdir, partitions=PARTITIONS, wait=False, **group, **env
                    )
                )
            ready(*workers)
            async with httpx.AsyncClient(timeout=10) as client:
                shares = await wait_for_shares(client, workers)

                topic = workers[0].topic(delivery_topic(Channel.PUSH, Lane.HIGH))
                producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=20)
                await producer.start()
                try:
                    for user, raw in records:
                        await producer.send(topic, raw, key=user.encode())
                    await producer.flush()
                finally:
                    await producer.stop()
                produced_at = time.time()

                for _ in range(600):  # 60 s
                    if sandbox.sends("fcm"):
                        break
                    await asyncio.sleep(0.1)
                assert sandbox.sends("fcm"), "no FCM send within 60 s of the backlog"
                first_at = min(s.received_at for s in sandbox.sends("fcm"))
                await asyncio.sleep(max(first_at + SETTLE_S, produced_at + 1.0) - time.time())
                start, before = time.time(), [await scrape(client, w) for w in workers]
                await asyncio.sleep(WINDOW_S)
                end, after = time.time(), [await scrape(client, w) for w in workers]
                shares_after = [a["pace"] for a in after]

                # Drain: every delivery is sent, once.
                last, stalled_since = -1, time.monotonic()
                while time.monotonic() - stalled_since < 60:
                    done = len({s.delivery_id for s in sandbox.sends("fcm")} & expected)
                    if done == len(expected):
                        break
                    if done != last:
                        last, stalled_since = done, time.monotonic()
                    await asyncio.sleep(1)
                await asyncio.sleep(3)  # a late second send would show up as a duplicate
        finally:
            for w in workers:
                w.worker.stop()
        sends = sandbox.sends("fcm")
        per_second = sandbox.sends_per_second("fcm")

    counts = Counter(s.delivery_id for s in sends)
    in_window = sum(1 for s in sends if start <= s.received_at < end)
    sent_by_end = sum(1 for s in sends if s.received_at < end)
    rate = in_window / (end - start)
    whole = [n for sec, n in per_second.items() if start <= sec and sec + 1 <= end]
    seconds = end - start
    by_worker = [(a["sent"] - b["sent"]) / seconds for a, b in zip(after, before, strict=True)]
    figure(
        f"global pacing: {WORKERS} workers, FCM at {RATE:g}/s for the group (scope {SCOPE}), "
        f"shares {'/'.join(f'{s:.1f}' for s in shares)}: measured {rate:.1f}/s over "
        f"{end - start:.0f} s ({rate / RATE - 1:+.1%}; per second {min(whole)}..{max(whole)}; "
        f"per worker {'/'.join(f'{r:.1f}' for r in by_worker)}), "
        f"{len(set(counts) & expected)} of {DELIVERIES} sent, "
        f"{sum(n - 1 for n in counts.values())} twice"
    )
    assert shares_after == shares, f"a rebalance during the window: {shares} -> {shares_after}"
    # The backlog outlasted the window: otherwise the workers sent it faster than paced.
    assert sent_by_end < DELIVERIES, (
        f"the backlog ({DELIVERIES}, {WORK_S} s at {RATE:g}/s) ran out by the window's end"
    )
    assert abs(rate - RATE) <= TOLERANCE * RATE, f"{rate:.1f}/s is not {RATE:g}/s ±5 %"
    assert set(counts) == expected, f"{len(expected - set(counts))} deliveries never sent"
    assert max(counts.values()) == 1, "a delivery was sent twice"
