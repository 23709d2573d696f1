"""`clarion replay` against a real broker and a real worker delivering to the provider
sandbox: dry-run counts and writes nothing, redeliver sends nothing twice, state-only
rebuilds tables without delivering, an interrupted replay resumes without re-producing,
and a missing topic or an out-of-range offset is a one-line error."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from devenv.sandbox import Sandbox
from logic.replay import HEADER_ID, HEADER_SOURCE, Source
from logic.rules import load_rules
from schemas.common import Category
from streams.catalog import DLQ_EVENTS, PREFERENCES, RECEIPTS, TICKS, all_topics
from tests.factories import event_bytes
from tests.integration.conftest import FAST_RULES, Pipeline
from tests.integration.delivery_env import (
    delivering_pipeline,
    fcm_token,
    for_user,
    records_where,
    set_contacts,
    value,
    wait_for_sends,
)
from tests.integration.kafka_io import collect

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox
) -> Iterator[Pipeline]:
    with delivering_pipeline(kafka_bootstrap, tmp_path_factory.mktemp("replay"), sandbox) as p:
        yield p


# -- helpers -------------------------------------------------------------------------------


def _env(p: Pipeline, data_dir: Path, prefix: str | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": p.bootstrap,
        "CLARION_TOPIC_PREFIX": p.prefix if prefix is None else prefix,
        "CLARION_DATA_DIR": str(data_dir),
        "CLARION_RULES_PATH": str(FAST_RULES),
        "CLARION_PARTITIONS": "4",
    }


def _argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", "replay", "--no-progress", *args]


async def replay(
    p: Pipeline, data_dir: Path, *args: str, prefix: str | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *_argv(*args),
        env=_env(p, data_dir, prefix),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def replay_json(p: Pipeline, data_dir: Path, *args: str) -> dict[str, Any]:
    code, out, err = await replay(p, data_dir, *args, "--json")
    assert code == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))


async def produce_at(
    p: Pipeline, topic: str, values: Sequence[bytes | None], key: str
) -> tuple[int, int, int]:
    """Produce in order; (partition, first offset, end offset) of what was written."""
    producer = AIOKafkaProducer(bootstrap_servers=p.bootstrap)
    await producer.start()
    try:
        metas = [await producer.send_and_wait(p.topic(topic), v, key=key.encode()) for v in values]
    finally:
        await producer.stop()
    assert len({m.partition for m in metas}) == 1
    return metas[0].partition, metas[0].offset, metas[-1].offset + 1


def range_args(partition: int, start: int, end: int) -> list[str]:
    return ["--partition", str(partition), "--from-offset", str(start), "--to-offset", str(end)]


async def end_offsets(p: Pipeline) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=p.bootstrap)
    await consumer.start()
    try:
        names = [p.topic(spec.name) for spec in all_topics() if spec.name != TICKS]
        names += [t for t in await consumer.topics() if t.startswith(f"{p.app_id}-")]
        tps = [
            TopicPartition(t, part)
            for t in names
            for part in consumer.partitions_for_topic(t) or ()
        ]
        ends = await consumer.end_offsets(tps)
        return {f"{tp.topic}[{tp.partition}]": o for tp, o in ends.items()}
    finally:
        await consumer.stop()


async def receipts(p: Pipeline, uid: str, n: int, timeout_s: float = 60) -> list[dict[str, Any]]:
    return [value(r) for r in await records_where(p, RECEIPTS, for_user(uid), n, timeout_s)]


async def changelog(p: Pipeline, table: str, key: str, n: int, timeout_s: float = 60) -> list[Any]:
    records = await collect(
        p.bootstrap,
        [f"{p.app_id}-{table}-changelog"],
        until=lambda kept: len(kept) >= n,
        keep=lambda r: r.key == key.encode(),
        timeout_s=timeout_s,
    )
    return [None if r.value is None else json.loads(r.value) for r in records]


# -- errors --------------------------------------------------------------------------------


async def test_missing_topic_and_out_of_range_offset_are_one_line_errors(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    code, _, err = await replay(pipeline, tmp_path, "events.social", prefix="no-such-prefix.")
    assert code == 2
    assert err.strip() == (
        f"clarion replay: error: topic 'no-such-prefix.events.social' does not exist "
        f"on {pipeline.bootstrap}"
    )

    code, _, err = await replay(
        pipeline, tmp_path, "events.social", *range_args(0, 10**9, 10**9 + 1)
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(
        f"clarion replay: error: --from-offset {10**9} is out of range for "
        f"{pipeline.topic('events.social')}[0]"
    )

    code, _, err = await replay(pipeline, tmp_path, "events.social", "--partition", "99")
    assert code == 2 and "has no partition 99" in err


# -- dry-run -------------------------------------------------------------------------------


async def test_dry_run_counts_per_lane_and_channel_and_writes_nothing(
    pipeline: Pipeline, tmp_path: Path, uid: str
) -> None:
    events = [
        event_bytes("payment", recipient_id=uid),
        event_bytes("payment", recipient_id=uid),
        event_bytes("message", recipient_id=uid),
        b'{"type": "payment", "broken',
    ]
    where = await produce_at(pipeline, "events.messaging", events, uid)
    await receipts(pipeline, uid, 3)  # the worker has been through them
    await asyncio.sleep(2)
    before = await end_offsets(pipeline)

    summary = await replay_json(pipeline, tmp_path, "events.messaging", *range_args(*where))

    rules = load_rules(FAST_RULES)
    expected_channels: dict[str, int] = {}
    for category, lane, n in (("payment", "critical", 2), ("message", "high", 1)):
        for ch in rules.for_category(Category(category)).channels:
            expected_channels[f"{lane}/{ch.value}"] = n
    counts = summary["counts"]
    assert counts["records"] == 4
    assert counts["lanes"] == {"critical": 2, "high": 1}
    assert counts["channels"] == dict(sorted(expected_channels.items()))
    assert counts["invalid"] == {"malformed_json": 1}
    assert summary["done"] and summary["total"] == 4
    assert await end_offsets(pipeline) == before, "a dry-run wrote to Kafka"


# -- redeliver -----------------------------------------------------------------------------


async def test_redeliver_of_a_delivered_range_sends_nothing_twice(
    pipeline: Pipeline, sandbox: Sandbox, tmp_path: Path, uid: str
) -> None:
    token = fcm_token()
    await set_contacts(pipeline, uid, devices=[{"token": token, "platform": "fcm"}])
    where = await produce_at(
        pipeline, "events.payments", [event_bytes("payment", recipient_id=uid)], uid
    )
    assert len(await wait_for_sends(sandbox, "fcm", token, 1)) == 1
    inbox = await changelog(pipeline, "inbox", uid, 1)
    assert len(inbox[-1]) == 1

    summary = await replay_json(
        pipeline, tmp_path, "events.payments", "--mode", "redeliver", *range_args(*where)
    )
    assert summary["produced"] == 1 and summary["done"]

    # The replayed event went all the way to the push sink, whose ledger skipped it.
    def skipped(r: Any) -> bool:
        return bool(for_user(uid)(r) and value(r)["status"] == "skipped")

    await records_where(pipeline, RECEIPTS, skipped, 1, timeout_s=60)
    await asyncio.sleep(2)  # a second send, or any other receipt, would be out by now
    got = await receipts(pipeline, uid, 100, timeout_s=3)
    skips = [r for r in got if r["status"] == "skipped"]
    assert [(r["channel"], r["reason"]) for r in skips] == [("push", "already_sent")]
    assert len(sandbox.sends("fcm", token)) == 1, "the provider got the notification twice"
    # The in-app sink saw the same delivery id again and kept one inbox item.
    inbox = await changelog(pipeline, "inbox", uid, 100, timeout_s=3)
    assert inbox and all(len(items) == 1 for items in inbox)


# -- state-only ----------------------------------------------------------------------------


async def test_state_only_rebuilds_preferences_and_dedupe_state_without_delivering(
    pipeline: Pipeline, tmp_path: Path, uid: str
) -> None:
    old = {"user_id": uid, "locale": "de"}
    new = {"user_id": uid, "locale": "fr"}
    where = await produce_at(
        pipeline, PREFERENCES, [json.dumps(old).encode(), json.dumps(new).encode()], uid
    )
    assert len(await changelog(pipeline, "preferences", uid, 2)) == 2

    summary = await replay_json(
        pipeline, tmp_path, PREFERENCES, "--mode", "state-only", *range_args(*where)
    )
    # Only the newest value per key is replayed: the old one must not overwrite it.
    assert (summary["produced"], summary["skipped"]) == (1, {"superseded": 1})
    rows = await changelog(pipeline, "preferences", uid, 3)
    assert len(rows) == 3 and rows[-1]["locale"] == "fr"

    # Ingress, state-only: the dedupe table is written again, nothing goes onward.
    event = event_bytes("payment", recipient_id=uid)
    event_id = json.loads(event)["event_id"]
    where = await produce_at(pipeline, "events.payments", [event], uid)
    first = await receipts(pipeline, uid, 1)
    seen = await changelog(pipeline, "seen-events", event_id, 1)
    await replay_json(
        pipeline, tmp_path, "events.payments", "--mode", "state-only", *range_args(*where)
    )
    seen = await changelog(pipeline, "seen-events", event_id, 2)
    assert len(seen) == 2 and seen[0][0] == seen[1][0] == where[1]  # the original offset
    await asyncio.sleep(3)
    assert len(await receipts(pipeline, uid, len(first) + 1, timeout_s=5)) == len(first)


# -- resume --------------------------------------------------------------------------------


async def test_an_interrupted_replay_resumes_without_reproducing(
    pipeline: Pipeline, tmp_path: Path, uid: str
) -> None:
    n = 60
    values = [event_bytes("payment", recipient_id=uid) for _ in range(n)]
    partition, start, end = await produce_at(pipeline, "events.payments", values, uid)
    args = ["events.payments", "--mode", "state-only", *range_args(partition, start, end)]

    proc = await asyncio.create_subprocess_exec(
        *_argv(*args, "--rate", "10", "--json"),
        env=_env(pipeline, tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    checkpoints = tmp_path / "replay"
    for _ in range(600):  # until a few batches are checkpointed
        files = list(checkpoints.glob("*.json")) if checkpoints.exists() else []
        if files and json.loads(files[0].read_text())["produced"] >= 20:
            break
        await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130, err.decode()
    first = json.loads(out.decode().strip().splitlines()[-1])
    assert not first["done"] and 20 <= first["completed"] < n

    second = await replay_json(pipeline, tmp_path, *args)
    assert second["resumed"] and second["done"] and second["completed"] == n
    assert second["produced"] == n  # counted over both runs

    copies = await collect(
        pipeline.bootstrap,
        [pipeline.topic("events.payments")],
        until=lambda kept: len(kept) >= n + 1,
        keep=lambda r: dict(r.headers).get(HEADER_ID) == second["replay_id"].encode(),
        timeout_s=15,
    )
    sources = [Source.parse(dict(r.headers)[HEADER_SOURCE]) for r in copies]
    assert sorted(s.offset for s in sources if s is not None) == list(range(start, end))


# -- dead letters ----------------------------------------------------------------------------


async def test_dead_letters_are_replayed_to_their_source_topic_once(
    pipeline: Pipeline, tmp_path: Path, uid: str
) -> None:
    # A dead letter whose cause has since been fixed (here: it is simply valid).
    headers = [
        ("clarion.dlq.reason", b"schema_violation"),
        ("clarion.dlq.source.topic", pipeline.topic("events.payments").encode()),
        ("clarion.dlq.source.partition", b"0"),
        ("clarion.dlq.source.offset", b"0"),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait(
            pipeline.topic(DLQ_EVENTS),
            event_bytes("payment", recipient_id=uid),
            key=uid.encode(),
            headers=headers,
        )
    finally:
        await producer.stop()
    where = range_args(meta.partition, meta.offset, meta.offset + 1)

    dry = await replay_json(pipeline, tmp_path, DLQ_EVENTS, *where)
    assert dry["counts"]["lanes"] == {"critical": 1}
    summary = await replay_json(pipeline, tmp_path, DLQ_EVENTS, "--mode", "redeliver", *where)
    assert summary["produced"] == 1
    got = await receipts(pipeline, uid, 1)
    assert [r["channel"] for r in got] == ["in_app"]

    # Replaying the same dead letter again is a duplicate event id: dropped by dedupe.
    again = await replay_json(
        pipeline, tmp_path, DLQ_EVENTS, "--mode", "redeliver", "--restart", *where
    )
    assert again["produced"] == 1
    await asyncio.sleep(3)
    assert len(await receipts(pipeline, uid, 2, timeout_s=5)) == 1
