"""Celebrity fan-out end to end: follows → followers table; a live_started broadcast → one
bulk-lane notification per follower; a kill -9 mid-fan-out resumes, it does not restart."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from schemas.common import Lane
from streams.catalog import DLQ_EVENTS, FOLLOWS, lane_topic
from tests.factories import event_dict
from tests.integration.conftest import Figure, Pipeline, start_pipeline
from tests.integration.kafka_io import collect, produce_json
from tests.integration.test_metrics import scrape_until, value

pytestmark = pytest.mark.integration

PAGE = 50


async def follow_all(p: Pipeline, actor: str, followers: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=p.bootstrap, linger_ms=20)
    await producer.start()
    try:
        futures = [
            await producer.send(
                p.topic(FOLLOWS),
                json.dumps({"actor_id": actor, "follower_id": f}).encode(),
                key=f"{actor}/{f}".encode(),
            )
            for f in followers
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def edges_of(actor: str, followers: list[str]) -> set[bytes]:
    return {f"{actor}/{f}".encode() for f in followers}


def live_edges(records: list) -> set[bytes]:
    """The edges a changelog's records leave in the table (the last record of a key wins)."""
    last: dict[bytes, bytes | None] = {}
    for r in records:
        last[r.key] = r.value
    return {key for key, value in last.items() if value is not None}


async def wait_for_graph(p: Pipeline, edges: set[bytes]) -> None:
    """Block until the worker's followers changelog holds exactly `edges` (records of one
    key written together leave one record: the loader writes batches, streams/topic_loader)."""
    got = await collect(
        p.bootstrap,
        [f"{p.app_id}-followers-changelog"],
        until=lambda kept: live_edges(kept) == edges,
        timeout_s=120,
    )
    live = live_edges(got)
    assert live == edges, f"followers table: {len(edges - live)} missing, {len(live - edges)} extra"


async def broadcast(p: Pipeline, actor: str) -> str:
    event = event_dict(
        "live_started",
        actor_id=actor,
        audience={"kind": "followers", "of": actor},
        stream_title="Late show",
    )
    await produce_json(p.bootstrap, p.topic("events.social"), event, actor)
    return str(event["event_id"])


async def notified(p: Pipeline, event_id: str, until_distinct: int, timeout_s: float) -> Counter:
    """Recipients of the broadcast's bulk-lane notifications, with how often each got one."""
    records = await collect(
        p.bootstrap,
        [p.topic(lane_topic(Lane.BULK))],
        until=lambda kept: len({r.key for r in kept}) >= until_distinct,
        keep=lambda r: json.loads(r.value)["event_id"] == event_id,
        timeout_s=timeout_s,
    )
    return Counter(r.key.decode() for r in records if r.key)


async def test_broadcast_reaches_every_follower_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    p = start_pipeline(
        kafka_bootstrap,
        tmp_path,
        CLARION_FANOUT_PAGE_SIZE=str(PAGE),
        CLARION_FANOUT_PER_S="20000",
    )
    try:
        actor, other = f"star-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
        fans = [f"fan{i:05d}" for i in range(1200)]
        await follow_all(p, actor, fans)
        await follow_all(p, other, ["not-a-fan-1", "not-a-fan-2"])
        # Two unfollows (tombstones) and one record whose key does not match its value.
        producer = AIOKafkaProducer(bootstrap_servers=p.bootstrap)
        await producer.start()
        try:
            for gone in fans[:2]:
                await producer.send_and_wait(p.topic(FOLLOWS), None, key=f"{actor}/{gone}".encode())
            bad = json.dumps({"actor_id": actor, "follower_id": "mallory"}).encode()
            await producer.send_and_wait(p.topic(FOLLOWS), bad, key=f"{actor}/eve".encode())
        finally:
            await producer.stop()
        await wait_for_graph(
            p, edges_of(actor, fans[2:]) | edges_of(other, ["not-a-fan-1", "not-a-fan-2"])
        )
        # The loader's progress is on /metrics (it is not in Faust's consumer lag): the
        # 1,202 follows, 2 tombstones and the bad record.
        follows, read = p.topic(FOLLOWS), len(fans) + 5
        loaded = await scrape_until(
            p, lambda s: value(s, "clarion_topic_loader_records_total", topic=follows) >= read
        )
        assert value(loaded, "clarion_topic_loader_records_total", topic=follows) == read
        assert value(loaded, "clarion_topic_loader_lag", topic=follows) == 0

        event_id = await broadcast(p, actor)
        expected = set(fans[2:])
        got = await notified(p, event_id, len(expected), timeout_s=120)

        assert set(got) == expected, (
            f"missing {len(expected - set(got))}, unexpected {sorted(set(got) - expected)[:5]}"
        )
        assert max(got.values()) == 1, "a follower was notified twice without a crash"
        dead = await collect(
            p.bootstrap,
            [p.topic(DLQ_EVENTS)],
            until=lambda kept: len(kept) >= 1,
            keep=lambda r: r.key == f"{actor}/eve".encode(),
            timeout_s=30,
        )
        assert [dict(r.headers)["clarion.dlq.reason"] for r in dead] == [b"bad_key"]
        assert dead[0].value == bad
    finally:
        p.worker.stop()


@pytest.mark.timeout(900)
async def test_kill_9_mid_fanout_resumes_from_the_checkpoint(
    kafka_bootstrap: str, tmp_path: Path, figure: Figure
) -> None:
    partitions, rate = 4, 150.0
    p = start_pipeline(
        kafka_bootstrap,
        tmp_path,
        partitions=partitions,
        CLARION_FANOUT_PAGE_SIZE=str(PAGE),
        CLARION_FANOUT_PER_S=str(rate),
        CLARION_FANOUT_STALL_S="10",
    )
    try:
        actor = f"star-{uuid.uuid4().hex[:6]}"
        fans = [f"fan{i:05d}" for i in range(3000)]
        await follow_all(p, actor, fans)
        await wait_for_graph(p, edges_of(actor, fans))
        event_id = await broadcast(p, actor)

        # Let about a third go out (3,000 at 150/s take 20 s), then kill -9.
        before = await notified(p, event_id, len(fans) // 3, timeout_s=90)
        p.worker.kill()
        await asyncio.sleep(1)
        at_kill = await notified(p, event_id, len(fans), timeout_s=3)
        assert 0 < len(at_kill) < len(fans), "the kill must land mid-fan-out"
        assert len(before) <= len(at_kill)

        restarted = time.monotonic()
        p.worker.start()
        p.worker.wait_ready()
        got = await notified(p, event_id, len(fans), timeout_s=240)
        took = time.monotonic() - restarted

        duplicates = sum(got.values()) - len(got)
        # A page sent but not yet checkpointed is sent again: at most one per partition.
        bound = partitions * PAGE
        figure(
            f"fan-out crash: {len(fans)} followers, {len(at_kill)} notified before the "
            f"kill, all {len(got)} after the restart ({took:.0f} s); duplicates "
            f"{duplicates} (bound {bound})"
        )
        assert set(got) == set(fans)
        assert duplicates <= bound, "the fan-out started over instead of resuming"
    finally:
        p.worker.stop()


@pytest.mark.timeout(600)
async def test_kill_9_mid_graph_load_loses_no_edge(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The graph is read in batches outside Faust's streams (streams/topic_loader.py), with
    its own committed offsets: a kill -9 while edges arrive, and a restart on an empty disk
    (the table restored from its changelog, the topic read from the last commit), must
    leave exactly the edges the topic says, and a broadcast must reach exactly them."""
    p = start_pipeline(
        kafka_bootstrap,
        tmp_path,
        CLARION_FANOUT_PAGE_SIZE="500",
        CLARION_FANOUT_PER_S="50000",
    )
    try:
        actor = f"star-{uuid.uuid4().hex[:6]}"
        fans = [f"fan{i:05d}" for i in range(12_000)]
        # Order matters: fans 0-999 unfollow after following, 0-499 follow again.
        records = [(f, True) for f in fans] + [(f, False) for f in fans[:1000]]
        records += [(f, True) for f in fans[:500]]
        expected = edges_of(actor, fans[:500] + fans[1000:])

        async def produce_slowly() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=p.bootstrap, linger_ms=5)
            await producer.start()
            try:
                for start in range(0, len(records), 500):
                    for f, follows in records[start : start + 500]:
                        value = json.dumps({"actor_id": actor, "follower_id": f}).encode()
                        await producer.send(
                            p.topic(FOLLOWS),
                            value if follows else None,
                            key=f"{actor}/{f}".encode(),
                        )
                    await producer.flush()
                    await asyncio.sleep(0.1)  # about 5,000 records/s: the load spans the kill
            finally:
                await producer.stop()

        producing = asyncio.create_task(produce_slowly())
        loaded = await collect(
            p.bootstrap,
            [f"{p.app_id}-followers-changelog"],
            until=lambda kept: len(kept) >= 3000,
            timeout_s=60,
        )
        assert len(loaded) >= 3000, "the graph load did not start"
        p.worker.kill()
        assert not producing.done(), "the kill must land while edges still arrive"
        await producing
        shutil.rmtree(tmp_path / "data")  # restored from the changelog, not the old disk

        p.worker.start()
        p.worker.wait_ready()
        await wait_for_graph(p, expected)
        event_id = await broadcast(p, actor)
        want = {e.decode().split("/", 1)[1] for e in expected}
        got = await notified(p, event_id, len(want), timeout_s=120)
        assert set(got) == want, (
            f"missing {len(want - set(got))}, unexpected {sorted(set(got) - want)[:5]}"
        )
    finally:
        p.worker.stop()
