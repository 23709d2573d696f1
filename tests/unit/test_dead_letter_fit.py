"""Dead letters fit what the producer and the dead-letter topic accept (logic/deadletter.py),
and an existing dead-letter topic's limit is raised without losing its other overrides."""

from __future__ import annotations

import hashlib

from logic import deadletter
from streams.admin import raised_limit
from streams.catalog import DLQ_EVENTS, all_topics
from streams.settings import Settings

HEADERS = {"clarion.dlq.reason": b"payload_too_large", "clarion.dlq.source.offset": b"7"}


def test_a_record_that_fits_is_dead_lettered_unchanged() -> None:
    value = b"x" * 2_000_000
    fitted, headers = deadletter.fit(b"alice", value, HEADERS, 2_097_152 + 65_536)
    assert fitted is value
    assert headers == HEADERS
    assert deadletter.fit(b"k", None, HEADERS, 10)[0] is None  # a tombstone stays one


def test_a_record_over_the_budget_becomes_a_truncated_copy_that_says_so() -> None:
    value = bytes(range(256)) * 40_000  # 10,240,000 bytes
    budget = 1_000_000
    fitted, headers = deadletter.fit(b"alice", value, HEADERS, budget)
    assert fitted is not None and value.startswith(fitted)
    assert deadletter.record_size(b"alice", fitted, headers) <= budget
    assert len(fitted) > budget - 2_000  # only the headers' room is given up
    assert headers[deadletter.TRUNCATED] == b"true"
    assert headers[deadletter.ORIGINAL_BYTES] == b"10240000"
    assert headers[deadletter.ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert headers["clarion.dlq.reason"] == b"payload_too_large"  # the reason is kept


def test_after_a_refusal_the_budget_halves_down_to_a_floor() -> None:
    assert deadletter.smaller_budget(2_000_000, 2_000_000) == 1_000_000
    assert deadletter.smaller_budget(2_000_000, 900_000) == 450_000
    assert deadletter.smaller_budget(5_000, 5_000) == deadletter.MIN_BUDGET


def test_producer_limit_and_dead_letter_topics_cover_the_largest_record() -> None:
    s = Settings(max_record_bytes=3_000_000)
    assert s.dead_letter_max_bytes >= 3_000_000 + 4096
    default = Settings()
    assert default.max_record_bytes == 2_097_152  # the dev broker's message.max.bytes
    dlq = next(t for t in all_topics(s.dead_letter_max_bytes) if t.name == DLQ_EVENTS)
    assert dict(dlq.extra_config)["max.message.bytes"] == str(s.dead_letter_max_bytes)


def test_an_existing_topic_gets_the_larger_limit_and_keeps_its_overrides() -> None:
    # DescribeConfigs entries: (name, value, read_only, config_source, sensitive, synonyms);
    # source 1 = set on the topic, 5 = broker default.
    entries: list[tuple[object, ...]] = [
        ("cleanup.policy", "delete", False, 5, False, []),
        ("retention.ms", "2592000000", False, 1, False, []),
        ("max.message.bytes", "1048588", False, 5, False, []),
    ]
    assert raised_limit(entries, 2_162_688) == {
        "retention.ms": "2592000000",
        "max.message.bytes": "2162688",
    }
    entries[2] = ("max.message.bytes", "4000000", False, 1, False, [])
    assert raised_limit(entries, 2_162_688) is None
