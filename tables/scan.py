"""Ordered range reads of one partition's RocksDB store.

Faust's table API has only get/set and whole-table iteration; paging an audience needs a
seek to a key and a bounded read from there. The partition's `rocksdict.Rdict` of
serialized keys and values comes from faust-streaming's store, through
streams/faust_internals.py (the one module that names its private attributes).
"""

from __future__ import annotations

from typing import Any

from streams import faust_internals


def keys_with_prefix(
    table: Any, partition: int, prefix: bytes, after: bytes | None, limit: int
) -> list[bytes]:
    """Up to `limit` keys of `partition` starting with `prefix`, in key order, strictly after
    `after` (or from the start of the prefix)."""
    db = faust_internals.store_db(table, partition)
    keys: list[bytes] = []
    for key in db.keys(from_key=after or prefix):
        if not key.startswith(prefix):
            break
        if after is not None and key == after:
            continue
        keys.append(key)
        if len(keys) >= limit:
            break
    return keys


def items_with_prefix(
    table: Any, partition: int, prefix: bytes, limit: int
) -> list[tuple[bytes, bytes]]:
    """Up to `limit` (key, serialized value) pairs of `partition` whose key starts with
    `prefix`."""
    db = faust_internals.store_db(table, partition)
    # Faust keeps the partition's changelog offset in the same store, under its own key.
    offset_key = getattr(table.data, "offset_key", None)
    items: list[tuple[bytes, bytes]] = []
    for key, value in db.items(from_key=prefix):
        if not key.startswith(prefix) or len(items) >= limit:
            break
        if key != offset_key:
            items.append((key, value))
    return items


def decode_value(table: Any, raw: bytes) -> Any:
    """A serialized value read by the functions above, decoded by the table's own serializer
    (its typed row: tables/rows.py, or a model for the PydanticCodec tables)."""
    return faust_internals.decode_store_value(table, raw)
