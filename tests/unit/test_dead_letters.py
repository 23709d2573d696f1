from __future__ import annotations

from datetime import UTC, datetime

from logic.deadletter import (
    MAX_DETAIL_CHARS,
    delivery_dlq_headers,
    describe_failure,
    dlq_headers,
    parse_faults,
)

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_headers_name_reason_detail_source_time_and_extras() -> None:
    h = dlq_headers("stage_error", "boom", ("t", 2, 7), NOW, stage="route.critical")
    assert h == {
        "clarion.dlq.reason": b"stage_error",
        "clarion.dlq.detail": b"boom",
        "clarion.dlq.source.topic": b"t",
        "clarion.dlq.source.partition": b"2",
        "clarion.dlq.source.offset": b"7",
        "clarion.dlq.at": NOW.isoformat().encode(),
        "clarion.dlq.stage": b"route.critical",
    }
    assert "clarion.dlq.source.topic" not in dlq_headers("r", "d", None, NOW)
    assert len(dlq_headers("r", "x" * 5000, None, NOW)["clarion.dlq.detail"]) == MAX_DETAIL_CHARS


def test_delivery_headers_add_channel_provider_delivery_and_attempts() -> None:
    h = delivery_dlq_headers(
        "fcm:UNREGISTERED",
        "gone",
        ("deliveries.push.high", 3, 41),
        NOW,
        channel="push",
        provider="fcm",
        delivery_id="d1",
        attempts=2,
    )
    assert h == {
        "clarion.dlq.reason": b"fcm:UNREGISTERED",
        "clarion.dlq.detail": b"gone",
        "clarion.dlq.source.topic": b"deliveries.push.high",
        "clarion.dlq.source.partition": b"3",
        "clarion.dlq.source.offset": b"41",
        "clarion.dlq.at": NOW.isoformat().encode(),
        "clarion.dlq.channel": b"push",
        "clarion.dlq.provider": b"fcm",
        "clarion.dlq.delivery_id": b"d1",
        "clarion.dlq.attempts": b"2",
    }
    # Feedback about mail sent before the attempt was echoed: only that header is missing.
    unknown = delivery_dlq_headers(
        "r", "d", ("t", 0, 0), NOW, channel="email", provider="sendgrid", delivery_id="d1",
        attempts=None,
    )  # fmt: skip
    assert set(h) - set(unknown) == {"clarion.dlq.attempts"}


def test_failures_are_described_in_one_line_without_a_traceback() -> None:
    assert describe_failure(ValueError("bad\nsecond line")) == "ValueError: bad"
    assert describe_failure(KeyError()) == "KeyError"


def test_fault_spec_parses_stage_key_pairs() -> None:
    assert parse_faults("route.critical=alice, ingest=bob,junk") == {
        ("route.critical", b"alice"),
        ("ingest", b"bob"),
    }
    assert parse_faults("") == frozenset()
