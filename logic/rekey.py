"""Re-keying records that a foreign producer put on the wrong partition.

Clarion's joins are local table lookups, so a user's records must sit on the partition that
Kafka's Java/aiokafka default partitioner gives the user id (`logic.partitioning`). A
librdkafka client (kcat, confluent-kafka, Go, Node) hashes keys with CRC32 instead, and a
keyless record lands anywhere. Clarion therefore owns the partitioning: a record found on
another partition is forwarded, byte for byte, to the right partition of a Clarion-owned
topic, with its original position in a header. The receiving agent treats it as the original
message at that position (the same dedupe entry, window watermark and ids), exactly as a
replayed record is treated (`logic.replay`). Records already on the right partition take the
fast path and are not copied.
"""

from __future__ import annotations

from logic.replay import Headers, Source, header_pairs, header_value

# Where the forwarded copy came from: "<topic>/<partition>/<offset>" of the original record.
HEADER_SOURCE = "clarion.rekey.source"
# For profile records: which table the copy belongs to ("preferences" or "contacts").
HEADER_KIND = "clarion.rekey.kind"


def rekey_source(headers: Headers) -> Source | None:
    """The original position a forwarded copy stands for, or None for an ordinary record."""
    raw = header_value(headers, HEADER_SOURCE)
    return None if raw is None else Source.parse(raw)


def rekey_kind(headers: Headers) -> str | None:
    raw = header_value(headers, HEADER_KIND)
    return None if raw is None else raw.decode(errors="replace")


def rekey_headers(
    original: Headers, source: Source, kind: str | None = None
) -> list[tuple[str, bytes]]:
    """The forwarded copy's headers: the original ones (a replay marker stays, so the copy
    is handled in the replay's mode) minus any earlier re-key headers, plus this one's."""
    pairs = [(k, v) for k, v in header_pairs(original) if k not in (HEADER_SOURCE, HEADER_KIND)]
    pairs.append((HEADER_SOURCE, source.encode()))
    if kind is not None:
        pairs.append((HEADER_KIND, kind.encode()))
    return pairs


def needs_rekey(owner_partition: int, record_partition: int, already_rekeyed: bool) -> bool:
    """A record is forwarded once, when it is not on its owner's partition. A copy that was
    already forwarded is never forwarded again (it was sent to the owner's partition)."""
    return not already_rekeyed and owner_partition != record_partition
