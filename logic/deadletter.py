"""Dead letters (`dlq.events`, `dlq.deliveries`): the one header set that says why a record
failed and where it was read, beside its original bytes (the Kafka Connect DLQ convention),
and fitting a dead letter into what the producer and the dead-letter topic accept.

A dead letter carries the original key and bytes. A record can only be larger than that
limit if an operator gave an ingress topic a larger max.message.bytes than Clarion's
CLARION_MAX_RECORD_BYTES (the producer limit and the dead-letter topics' limit are both set
from it, plus room for the headers): then the dead letter holds the first bytes of the value
and says so in headers (original size and SHA-256), rather than being lost or stopping the
partition for good.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime

TRUNCATED = "clarion.dlq.truncated"
ORIGINAL_BYTES = "clarion.dlq.original.bytes"
ORIGINAL_SHA256 = "clarion.dlq.original.sha256"
# Per record overhead on top of key, value and header bytes (record batch framing).
_FRAMING = 512
# A truncated copy never goes below this, whatever the broker says.
MIN_BUDGET = 4096


def record_size(key: bytes | None, value: bytes | None, headers: Mapping[str, bytes]) -> int:
    """An upper bound of the record's size in a produce request."""
    header_bytes = sum(len(k.encode()) + len(v) + 10 for k, v in headers.items())
    return len(key or b"") + len(value or b"") + header_bytes + _FRAMING


def fit(
    key: bytes | None, value: bytes | None, headers: Mapping[str, bytes], budget: int
) -> tuple[bytes | None, dict[str, bytes]]:
    """The value and headers to dead-letter within `budget` bytes: unchanged if they fit,
    otherwise the value's first bytes with headers naming the original size and digest."""
    out = dict(headers)
    if value is None or record_size(key, value, out) <= budget:
        return value, out
    out[TRUNCATED] = b"true"
    out[ORIGINAL_BYTES] = str(len(value)).encode()
    out[ORIGINAL_SHA256] = hashlib.sha256(value).hexdigest().encode()
    room = max(0, budget - record_size(key, b"", out))
    return value[:room], out


def smaller_budget(budget: int, size: int) -> int:
    """After the broker refused `size` bytes: the next budget to try (halving, floored)."""
    return max(MIN_BUDGET, min(budget, size) // 2)


REASON = "clarion.dlq.reason"
DETAIL = "clarion.dlq.detail"
STAGE = "clarion.dlq.stage"
SOURCE_TOPIC = "clarion.dlq.source.topic"
SOURCE_PARTITION = "clarion.dlq.source.partition"
SOURCE_OFFSET = "clarion.dlq.source.offset"
AT = "clarion.dlq.at"
# The headers of a dead-lettered delivery (dlq.deliveries), besides the ones above.
CHANNEL = "clarion.dlq.channel"
PROVIDER = "clarion.dlq.provider"
DELIVERY_ID = "clarion.dlq.delivery_id"
ATTEMPTS = "clarion.dlq.attempts"
# Header values are kept short: a detail is for a person reading the DLQ, not a dump.
MAX_DETAIL_CHARS = 1000


def dlq_headers(
    reason: str,
    detail: str,
    source: tuple[str, int, int] | None,
    now: datetime,
    **extra: str,
) -> dict[str, bytes]:
    """Headers for a dead letter: reason, detail, source (topic, partition, offset) and time,
    plus `extra` (e.g. stage, channel, provider, attempts) as `clarion.dlq.<name>`."""
    headers = {REASON: reason.encode(), DETAIL: detail[:MAX_DETAIL_CHARS].encode()}
    if source is not None:
        topic, partition, offset = source
        headers |= {
            SOURCE_TOPIC: topic.encode(),
            SOURCE_PARTITION: str(partition).encode(),
            SOURCE_OFFSET: str(offset).encode(),
        }
    headers[AT] = now.isoformat().encode()
    for name, value in extra.items():
        headers[f"clarion.dlq.{name}"] = value.encode()
    return headers


def delivery_dlq_headers(
    reason: str,
    detail: str,
    source: tuple[str, int, int] | None,
    now: datetime,
    *,
    channel: str,
    provider: str,
    delivery_id: str,
    attempts: int | None,
) -> dict[str, bytes]:
    """Headers for a dead-lettered delivery, whoever found it failed (a provider sink, or
    provider feedback after the send): `dlq_headers` plus channel, provider, delivery id and
    attempts (tries made, counting the first; left out only when the provider's feedback
    did not carry it)."""
    extra = {"channel": channel, "provider": provider, "delivery_id": delivery_id}
    if attempts is not None:
        extra["attempts"] = str(attempts)
    return dlq_headers(reason, detail, source, now, **extra)


def describe_failure(exc: BaseException) -> str:
    """One line naming the exception, for the detail header and the log. Only the type and
    the message: a traceback goes to the worker log, never onto a topic."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def parse_faults(spec: str) -> frozenset[tuple[str, bytes]]:
    """CLARION_FAULT_INJECTION: `"route.critical=alice,ingest=bob"` ->
    {("route.critical", b"alice"), ("ingest", b"bob")} (stages that raise on those keys)."""
    pairs = (item.split("=", 1) for item in spec.split(",") if "=" in item)
    return frozenset((stage.strip(), key.strip().encode()) for stage, key in pairs)
