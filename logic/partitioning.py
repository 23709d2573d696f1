"""Which partition a user-id key lands in: Kafka's default (murmur2) partitioner, the one
every producer of Clarion's user-keyed topics uses."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_of(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
