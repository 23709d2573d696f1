"""The kcat helper itself: exact bytes, keys, tombstones, librdkafka's CRC32 partitioning."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.kafka_io import collect
from tests.integration.kcat import kcat_produce, kcat_produce_many, librdkafka_partition

pytestmark = pytest.mark.integration


async def test_kcat_produces_exact_bytes_on_librdkafka_partitions(kafka_bootstrap: str) -> None:
    topic = f"kcat-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()

    odd = b'{"x": 1}\n\x00\x1e\xff'
    kcat_produce(kafka_bootstrap, topic, "alice", odd, headers={"h": "v"})
    kcat_produce(kafka_bootstrap, topic, "gone", None)
    kcat_produce_many(kafka_bootstrap, topic, [(f"k{i}", f"v{i}".encode()) for i in range(20)])

    got = await collect(kafka_bootstrap, [topic], lambda rs: len(rs) >= 22, timeout_s=20)
    by_key = {r.key: r for r in got}
    assert len(got) == 22
    assert by_key[b"alice"].value == odd
    assert by_key[b"alice"].headers == (("h", b"v"),)
    assert by_key[b"gone"].value is None
    for r in got:
        assert r.key is not None and r.partition == librdkafka_partition(r.key, 4)
    # CRC32 and murmur2 disagree for most keys: that is the point of producing with kcat.
    assert {r.partition for r in got} == {0, 1, 2, 3}
