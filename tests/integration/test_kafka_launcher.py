"""The local JVM launcher gives a working broker and leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped,unused-ignore]

from devenv.kafka import LocalKafka


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _roundtrip(bootstrap: str) -> list[tuple[bytes, bytes]]:
    """Create a topic (auto-creation is off), produce 3 records, consume them back."""
    topic = f"launcher-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, f"value-{i}".encode(), key=f"key-{i}".encode())
    finally:
        await producer.stop()

    # A consumer group, so the group coordinator (__consumer_offsets) is exercised too.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[tuple[bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < 3:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    received.extend((record.key, record.value) for record in records)
        await consumer.commit()
    finally:
        await consumer.stop()
    return received


@pytest.mark.integration
async def test_local_broker_roundtrip_and_nothing_left_behind() -> None:
    # Async on purpose: the launcher must also work from inside a running event loop.
    with LocalKafka() as broker:
        assert broker.bootstrap is not None and broker.pid is not None
        assert broker.port is not None and broker.workdir is not None
        pid, port, workdir = broker.pid, broker.port, broker.workdir
        assert broker.log_dir is not None and (broker.log_dir / "server.log").stat().st_size > 0
        assert _alive(pid)

        received = await _roundtrip(broker.bootstrap)
        assert received == [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(3)]

    assert not _alive(pid), f"Kafka JVM {pid} still running after the context exited"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with socket.socket() as sock:
        # SO_REUSEADDR: ignore TIME_WAIT leftovers; bind still fails if anyone listens.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    if os.environ.get("CLARION_KEEP_KAFKA_DIR") != "1":
        assert not workdir.exists()
