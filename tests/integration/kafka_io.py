"""Produce to and read from the real broker in tests: small, explicit, no consumer groups."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.structs import TopicPartition


async def produce(
    bootstrap: str, topic: str, values: list[bytes | None], key: bytes | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2_000_000)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def produce_json(bootstrap: str, topic: str, value: dict[str, Any], key: str) -> None:
    await produce(bootstrap, topic, [json.dumps(value).encode()], key=key.encode())


async def collect(
    bootstrap: str,
    topics: list[str],
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout_s: float = 30.0,
    keep: Callable[[ConsumerRecord[bytes, bytes]], bool] = lambda r: True,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read `topics` from the beginning, keeping records that pass `keep`, until `until`
    holds for what was kept or `timeout_s` passes (then return what there is)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = []
        for topic in topics:
            for p in consumer.partitions_for_topic(topic) or await _partitions(consumer, topic):
                partitions.append(TopicPartition(topic, p))
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        kept: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not until(kept) and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                kept.extend(r for r in records if keep(r))
        return kept
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        await consumer._client.force_metadata_update()  # topic may have just been created
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {topic} does not exist")


def values(records: list[ConsumerRecord[bytes, bytes]]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records if r.value is not None]
