"""Produce with Debian's `kcat` (the librdkafka CLI), a foreign client: its default
partitioner is librdkafka's `consistent_random` (CRC32 of the key; random without a key), not
the Java client's murmur2, and it sends exactly the bytes given. `make test` installs kcat
(Makefile target `kcat`); without it, tests using these helpers skip with a clear message.

    kcat_produce(bootstrap, topic, "alice", b'{"..."}')            # one record, kcat's partitioner
    kcat_produce_many(bootstrap, topic, [("alice", b"..."), (None, b"...")])
    librdkafka_partition("alice", 4)   # where kcat put it: CRC32, not murmur2
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterable, Mapping

import pytest

# Record and key separators for kcat_produce_many's stdin stream (ASCII RS and US). A value or
# key that contains one of them cannot go through one kcat run; kcat_produce handles any bytes.
_RECORD_SEP, _KEY_SEP = b"\x1e", b"\x1f"
_TIMEOUT_S = 60.0


def librdkafka_partition(key: str | bytes, partitions: int) -> int:
    """The partition kcat (librdkafka's consistent_random partitioner) picks for a non-empty
    key: CRC32 of the key bytes modulo the partition count."""
    return zlib.crc32(_as_bytes(key)) % partitions


def kcat_binary() -> str:
    """Path of kcat, or skip the calling test saying how to get it."""
    found = shutil.which(os.environ.get("CLARION_KCAT", "kcat"))
    if found is None:
        pytest.skip(
            "kcat is not installed: run `make kcat` (Debian/Ubuntu: sudo apt-get install kcat) "
            "or set CLARION_KCAT to its path"
        )
    return found


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _base_args(bootstrap: str, topic: str, largest: int) -> list[str]:
    # librdkafka refuses records over its own message.max.bytes (1,000,000 by default) before
    # the broker sees them; raise it so the broker's limit is the only one that applies.
    limit = max(1_000_000, largest + 64 * 1024)
    return [
        kcat_binary(),
        "-P",
        "-b",
        bootstrap,
        "-t",
        topic,
        "-m",
        "15",
        "-X",
        f"message.max.bytes={limit}",
    ]


def _run(args: list[str], stdin: bytes | None = None) -> None:
    done = subprocess.run(args, input=stdin, capture_output=True, timeout=_TIMEOUT_S)
    # kcat exits non-zero when a delivery fails (e.g. "Unknown topic or partition": the
    # broker does not auto-create topics) and says why on stderr.
    err = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"kcat failed (exit {done.returncode}): {err.strip()}")


def kcat_produce(
    bootstrap: str,
    topic: str,
    key: str | bytes | None,
    value: bytes | None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Produce one record with kcat's default partitioner and wait until the broker has it.
    `key=None` sends no key (kcat then picks a random partition); `value=None` a tombstone."""
    payload = b"" if value is None else value
    args = _base_args(bootstrap, topic, len(payload))
    for name, text in (headers or {}).items():
        args += ["-H", f"{name}={text}"]
    if not payload:
        # kcat skips an empty file, so an empty value or a tombstone (-Z: empty means NULL)
        # goes through stdin with a key separator instead.
        if value is None:
            args.append("-Z")
        if key is None:
            raise ValueError("kcat cannot send an empty record with no key")
        line = _as_bytes(key) + _KEY_SEP
        _run([*args, "-K", r"\x1f", "-D", r"\x1e"], stdin=line)
        return
    with tempfile.NamedTemporaryFile(prefix="kcat-", suffix=".bin") as f:
        f.write(payload)
        f.flush()
        if key is not None:
            args += ["-k", _as_bytes(key).decode("utf-8", errors="surrogateescape")]
        # A file argument is sent whole as one record, whatever bytes it holds.
        _run([*args, f.name])


def kcat_produce_many(
    bootstrap: str, topic: str, records: Iterable[tuple[str | bytes | None, bytes]]
) -> None:
    """Produce many (key, value) records in one kcat run (fast), in order, with kcat's
    default partitioner; a None key sends no key. Values must not contain bytes 0x1e/0x1f."""
    stream: list[bytes] = []
    largest = 0
    for key, value in records:
        parts = [value] if key is None else [_as_bytes(key), value]
        if any(_RECORD_SEP in p or _KEY_SEP in p for p in parts):
            raise ValueError("kcat_produce_many: key/value holds 0x1e or 0x1f; use kcat_produce")
        # A record with no key separator is sent with no key (kcat -K).
        stream.append(_KEY_SEP.join(parts))
        largest = max(largest, len(value))
    if not stream:
        return
    args = [*_base_args(bootstrap, topic, largest), "-K", r"\x1f", "-D", r"\x1e"]
    _run(args, stdin=_RECORD_SEP.join(stream))
