from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from logic.partitioning import murmur2, partition_of


@given(st.binary(max_size=64))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


@given(st.text(max_size=40), st.integers(min_value=1, max_value=256))
def test_partition_of_matches_the_default_partitioner(key: str, partitions: int) -> None:
    expected = (aiokafka_murmur2(key.encode()) & 0x7FFFFFFF) % partitions
    assert partition_of(key, partitions) == expected


# The Java client's own test vectors (UtilsTest.testMurmur2), as signed 32-bit ints.
JAVA = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_java_client_vectors() -> None:
    assert {
        k: murmur2(k) - (1 << 32) if murmur2(k) >= 1 << 31 else murmur2(k) for k in JAVA
    } == JAVA
