"""Faust commits past a record it never processed; Clarion's consumer does not.

On the real broker: offset 0 of a partition is still being processed while offsets 1 and 2
are done (two agent instances share the partition, as any out-of-order ack does). With
Faust's consumer the group commits offset 3 before offset 0 is finished (Faust skips its
gap check before a partition's first commit), so a kill -9 then loses record 0. With
Clarion's consumer (streams/consumer.py) nothing is committed until record 0 is done.

And: records the client fetched that Faust's getmany drops before any stream sees them (a
partition leaving the active set mid-batch) are committed past by Faust's consumer, never
to be read again; Clarion's consumer reads them again.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.conftest import Figure
from tests.integration.kafka_io import produce

ROOT = Path(__file__).resolve().parents[2]


async def committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    meta = offsets.get(tp)
    return None if meta is None or meta.offset < 0 else int(meta.offset)


class HoleWorker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.commit_hole_app", "worker", "-l", "info"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def processed(self) -> set[int]:
        # Faust's worker sends the agent's prints to its log ("[WARNING] processed 1").
        return {int(m) for m in re.findall(r"\bprocessed (\d+)", self.log.read_text())}

    async def wait_processed(self, offsets: set[int], timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while not offsets <= self.processed():
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"processed only {self.processed()}"
            await asyncio.sleep(0.2)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


async def hole_app_env(
    bootstrap: str, tmp_path: Path, name: str, guard: bool, records: list[bytes]
) -> tuple[dict[str, str], str, TopicPartition]:
    """A one-partition topic holding `records`, and the environment of a HoleWorker on it."""
    run = uuid.uuid4().hex[:8]
    topic, group = f"{name}{run}", f"{name}-app-{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    await produce(bootstrap, topic, records)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "HOLE_GUARD": "1" if guard else "0",
        "HOLE_APP_ID": group,
        "HOLE_TOPIC": topic,
        "HOLE_RELEASE": str(tmp_path / "release"),
        "HOLE_DATA_DIR": str(tmp_path / "data"),
    }
    return env, group, TopicPartition(topic, 0)


@pytest.mark.parametrize("guard", [False, True], ids=["faust_consumer", "clarion_consumer"])
@pytest.mark.timeout(240)
async def test_no_commit_past_a_record_still_in_flight(
    kafka_bootstrap: str, tmp_path: Path, guard: bool, figure: Figure
) -> None:
    env, group, tp = await hole_app_env(
        kafka_bootstrap, tmp_path, "hole", guard, [b"hold", b"a", b"b"]
    )
    release = tmp_path / "release"  # the file HOLE_RELEASE names
    worker = HoleWorker(env, tmp_path / "worker1.log")
    try:
        await worker.wait_processed({1, 2})
        await asyncio.sleep(3)  # ten commit intervals
        assert 0 not in worker.processed()
        at_kill = await committed(kafka_bootstrap, group, tp)
        worker.kill()
        figure(f"commit guard={guard}: committed {at_kill} with offset 0 still in flight")

        # Restart with the record free to finish: was it committed past (lost) or replayed?
        release.touch()
        worker = HoleWorker(env, tmp_path / "worker2.log")
        if not guard:
            # Faust's consumer: the group committed past offset 0, so it is never read again.
            assert at_kill == 3
            await asyncio.sleep(15)
            assert 0 not in worker.processed(), "Faust no longer commits past it: drop the guard?"
            return
        assert at_kill is None
        await worker.wait_processed({0, 1, 2})  # replayed from the start: nothing lost
        deadline = time.monotonic() + 30
        while await committed(kafka_bootstrap, group, tp) != 3:
            assert time.monotonic() < deadline, "never committed once all were processed"
            await asyncio.sleep(0.5)
    finally:
        worker.kill()


@pytest.mark.parametrize("guard", [False, True], ids=["faust_consumer", "clarion_consumer"])
@pytest.mark.timeout(240)
async def test_records_fetched_but_never_handed_on_are_read_again(
    kafka_bootstrap: str, tmp_path: Path, guard: bool, figure: Figure
) -> None:
    records = [f"r{i}".encode() for i in range(10)]
    env, group, tp = await hole_app_env(kafka_bootstrap, tmp_path, "drop", guard, records)
    env["HOLE_DROP"] = "3,4"
    worker = HoleWorker(env, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 60
        while (at := await committed(kafka_bootstrap, group, tp)) != 10:
            assert worker.proc.poll() is None, worker.log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"committed {at}, processed {worker.processed()}"
            await asyncio.sleep(0.5)
        figure(f"drop guard={guard}: processed {sorted(worker.processed())}, committed 10")
        if not guard:
            # Faust's consumer took the gap for offsets without records: 3 and 4 are lost.
            assert worker.processed() == set(range(10)) - {3, 4}
            return
        assert worker.processed() == set(range(10))
        passes = Counter(re.findall(r"\bprocessed (\d+)", worker.log.read_text()))
        assert set(passes.values()) == {1}, f"each record once: {passes}"
    finally:
        worker.kill()
