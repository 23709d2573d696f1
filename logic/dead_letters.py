"""The header set of every dead letter (`dlq.events` and `dlq.deliveries`): why it failed and
where it was read, beside the original bytes (the Kafka Connect DLQ convention)."""

from __future__ import annotations

from datetime import datetime

REASON = "clarion.dlq.reason"
DETAIL = "clarion.dlq.detail"
STAGE = "clarion.dlq.stage"
SOURCE_TOPIC = "clarion.dlq.source.topic"
SOURCE_PARTITION = "clarion.dlq.source.partition"
SOURCE_OFFSET = "clarion.dlq.source.offset"
AT = "clarion.dlq.at"
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


def describe_failure(exc: BaseException) -> str:
    """One line naming the exception, for the detail header and the log. Only the type and
    the message: a traceback goes to the worker log, never onto a topic."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
