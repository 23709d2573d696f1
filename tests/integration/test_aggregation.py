"""Aggregation windows on a real broker and worker: one notification per window with the
full count, across kill -9 and across partitions moving between workers. What a window
gathers and when it is due is tested in-process in tests/stages/test_digest.py."""

from __future__ import annotations

import asyncio
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from schemas.common import Channel, Lane
from streams.catalog import delivery_topic
from tests.factories import event_dict
from tests.integration.conftest import FAST_RULES, Figure, Pipeline, start_pipeline
from tests.integration.kafka_io import collect, values

pytestmark = pytest.mark.integration

WINDOW_S = 20


@pytest.fixture(scope="module")
def slow_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fast rules, but likes gather for 20 s: long enough to put 10,000 in one window."""
    path = tmp_path_factory.mktemp("rules") / "rules.toml"
    text = FAST_RULES.read_text()
    like = text.index("[categories.like]")
    end = text.index("[categories.comment]")
    path.write_text(
        text[:like] + text[like:end].replace("window_s = 3", f"window_s = {WINDOW_S}") + text[end:]
    )
    return path


async def at_window_start(margin_s: float = 0.5) -> float:
    """Sleep until just after a window boundary, so a burst fits inside one window."""
    now = time.time()
    start = math.ceil(now / WINDOW_S) * WINDOW_S
    if start - now > WINDOW_S - 2:  # already just past a boundary
        start = math.floor(now / WINDOW_S) * WINDOW_S
    await asyncio.sleep(max(0.0, start + margin_s - now))
    return start


async def produce_likes(
    p: Pipeline, uid: str, n: int, first_actor: int = 0, photo: str = "p1"
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=p.bootstrap, linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        now = datetime.now(UTC).isoformat()
        for i in range(first_actor, first_actor + n):
            event = event_dict(
                "like",
                recipient_id=uid,
                actor_id=f"a{i}",
                actor_name=f"a{i}",
                occurred_at=now,
                object={"kind": "photo", "id": photo},
            )
            await producer.send(
                p.topic("events.social"), json.dumps(event).encode(), key=uid.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


async def in_app_for(p: Pipeline, uid: str, n: int, timeout_s: float) -> list[dict]:
    records = await collect(
        p.bootstrap,
        [p.topic(delivery_topic(Channel.IN_APP, Lane.SOCIAL))],
        until=lambda kept: len(kept) >= n,
        keep=lambda r: r.key == uid.encode(),
        timeout_s=timeout_s,
    )
    return values(records)


async def test_kill_9_mid_window_still_one_notification_with_the_full_count(
    kafka_bootstrap: str, tmp_path: Path, slow_rules: Path, uid: str, figure: Figure
) -> None:
    p = start_pipeline(kafka_bootstrap, tmp_path, CLARION_RULES_PATH=str(slow_rules))
    try:
        await at_window_start()
        await produce_likes(p, uid, 10_000)
        # Wait until the worker has folded part of the burst into the window, then kill it.
        await collect(
            p.bootstrap,
            [f"{p.app_id}-digests-changelog"],
            until=lambda kept: len(kept) >= 500,
            keep=lambda r: r.key.startswith(uid.encode()),
            timeout_s=30,
        )
        p.worker.kill()
        p.worker.start()  # same app id, same RocksDB dir: recovery, then the backlog
        p.worker.wait_ready()
        found = await in_app_for(p, uid, 1, timeout_s=WINDOW_S + 90)
        await asyncio.sleep(3)
        found = await in_app_for(p, uid, 2, timeout_s=1)
        ids = {f["notification_id"] for f in found}
        figure(
            f"kill -9 mid-window: {len(found)} in-app deliveries on the topic, "
            f"{len(ids)} distinct notification(s), counts {[f['count'] for f in found]}"
        )
        assert len(ids) == 1
        assert {f["count"] for f in found} == {10_000}
    finally:
        p.worker.stop()


async def test_windows_flush_once_when_partitions_move_between_workers(
    kafka_bootstrap: str, tmp_path: Path, slow_rules: Path, uid: str, figure: Figure
) -> None:
    """A second worker joins mid-window (partitions move to it), then the first leaves:
    every user still gets exactly one notification, with the full count."""
    from logic.partitioning import partition_of

    users: list[str] = []
    i = 0
    while len({partition_of(u, 4) for u in users}) < 4:  # one user per partition
        candidate = f"{uid}-{i}"
        if partition_of(candidate, 4) not in {partition_of(u, 4) for u in users}:
            users.append(candidate)
        i += 1
    first = start_pipeline(kafka_bootstrap, tmp_path / "a", CLARION_RULES_PATH=str(slow_rules))
    second = None
    try:
        await at_window_start()
        for user in users:
            await produce_likes(first, user, 1_000)
        await collect(
            first.bootstrap,
            [f"{first.app_id}-digests-changelog"],
            until=lambda kept: len(kept) >= 200,
            timeout_s=30,
        )
        second = start_pipeline(
            kafka_bootstrap,
            tmp_path / "b",
            prefix=first.prefix,
            app_id=first.app_id,
            CLARION_RULES_PATH=str(slow_rules),
        )
        first.worker.stop()  # everything moves to the second worker
        for user in users:
            found = await in_app_for(second, user, 1, timeout_s=WINDOW_S + 90)
            assert found, f"no notification for {user}"
        await asyncio.sleep(3)
        counts = {
            u: [f["count"] for f in await in_app_for(second, u, 2, timeout_s=1)] for u in users
        }
        figure(f"after the partitions moved: {counts}")
        assert counts == {u: [1_000] for u in users}
    finally:
        first.worker.stop()
        if second is not None:
            second.worker.stop()
