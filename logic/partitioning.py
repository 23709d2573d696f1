"""Which partition a user-id key lands in: Kafka's default (murmur2) partitioner, the one
every producer of Clarion's user-keyed topics uses.

murmur2 is written out here (the Java client's Utils.murmur2, as aiokafka's pure-Python
copy) so that logic imports no Kafka client; tests/unit/test_partitioning.py checks it
against aiokafka's."""

from __future__ import annotations

import functools

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 of `data` as an unsigned 32-bit int (Kafka's variant and seed)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


# Memoized: ingest asks for the recipient's partition of every event, and recipients repeat
# (murmur2 in pure Python is about 4 µs per id).
@functools.lru_cache(maxsize=1 << 16)
def partition_of(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
