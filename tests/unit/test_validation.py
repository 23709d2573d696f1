import json
from datetime import UTC, datetime, timedelta

import pytest

from logic.classify import to_notification
from logic.render import default_renderer
from logic.replay import DryRunCounts
from logic.routing import plan_deliveries
from logic.rules import load_rules
from logic.validation import MAX_INT_DIGITS, EventClock, Rejection, RejectReason, decode_event
from schemas.events import LikeEvent, LiveStartedEvent, PaymentEvent
from schemas.notifications import ReceiptStatus
from tests.factories import event_bytes, event_dict


def test_valid_like_decodes_to_its_model() -> None:
    decoded = decode_event(event_bytes("like"), 65536)
    assert isinstance(decoded, LikeEvent)
    assert decoded.recipient_id == "alice"


def test_payment_amount_is_exact_decimal() -> None:
    decoded = decode_event(event_bytes("payment", amount="19.99"), 65536)
    assert isinstance(decoded, PaymentEvent)
    assert str(decoded.amount) == "19.99"


def test_broadcast_has_an_audience_not_a_recipient() -> None:
    decoded = decode_event(event_bytes("live_started"), 65536)
    assert isinstance(decoded, LiveStartedEvent)
    assert decoded.audience.of == "bob"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", RejectReason.EMPTY),
        (None, RejectReason.EMPTY),
        (b"{not json", RejectReason.MALFORMED_JSON),
        (b"\xff\xfe\x00", RejectReason.MALFORMED_JSON),
        (b"[1, 2]", RejectReason.NOT_AN_OBJECT),
        (json.dumps({"event_id": "e1"}).encode(), RejectReason.MISSING_TYPE),
        (event_bytes("like", type="poke"), RejectReason.UNKNOWN_TYPE),
        (event_bytes("like", schema_version=2), RejectReason.UNSUPPORTED_VERSION),
        (event_bytes("like", occurred_at="2026-01-01T00:00:00"), RejectReason.SCHEMA_VIOLATION),
        (event_bytes("payment", currency="euro"), RejectReason.SCHEMA_VIOLATION),
        (event_bytes("like", recipient_id="has space"), RejectReason.SCHEMA_VIOLATION),
    ],
)
def test_bad_input_is_rejected_with_a_reason(raw: bytes | None, reason: RejectReason) -> None:
    decoded = decode_event(raw, 65536)
    assert isinstance(decoded, Rejection)
    assert decoded.reason is reason
    assert decoded.detail


def test_missing_field_names_the_field() -> None:
    event = event_dict("comment")
    del event["text"]
    decoded = decode_event(json.dumps(event).encode(), 65536)
    assert isinstance(decoded, Rejection)
    assert decoded.reason is RejectReason.SCHEMA_VIOLATION
    assert "text" in decoded.detail


def test_oversized_payload_is_rejected_before_parsing() -> None:
    raw = event_bytes("comment", text="x" * 1000)
    decoded = decode_event(raw, max_bytes=len(raw) - 1)
    assert isinstance(decoded, Rejection)
    assert decoded.reason is RejectReason.TOO_LARGE
    assert str(len(raw)) in decoded.detail


def test_unknown_extra_fields_are_ignored_for_forward_compatibility() -> None:
    assert isinstance(decode_event(event_bytes("like", new_field=1), 65536), LikeEvent)


# -- event time ------------------------------------------------------------------------------

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CLOCK = EventClock(NOW, max_future_skew_s=300)


def test_an_event_from_the_year_2999_is_rejected_naming_value_and_bound() -> None:
    decoded = decode_event(event_bytes("like", occurred_at="2999-01-01T00:00:00Z"), 65536, CLOCK)
    assert isinstance(decoded, Rejection)
    assert decoded.reason is RejectReason.IN_FUTURE
    assert decoded.reason.value == "occurred_at_in_future"
    assert "2999-01-01T00:00:00+00:00" in decoded.detail
    assert "300 s" in decoded.detail and "2026-11-22T12:05:00+00:00" in decoded.detail


@pytest.mark.parametrize(
    ("ahead_s", "accepted"), [(0, True), (299, True), (300, True), (301, False), (-86400, True)]
)
def test_a_fast_clock_is_allowed_up_to_the_skew(ahead_s: int, accepted: bool) -> None:
    when = (NOW + timedelta(seconds=ahead_s)).isoformat()
    decoded = decode_event(event_bytes("payment", occurred_at=when), 65536, CLOCK)
    assert isinstance(decoded, PaymentEvent) is accepted
    if not accepted:
        assert isinstance(decoded, Rejection) and decoded.reason is RejectReason.IN_FUTURE


def test_broadcasts_are_bounded_too() -> None:
    decoded = decode_event(
        event_bytes("live_started", occurred_at="2999-01-01T00:00:00Z"), 65536, CLOCK
    )
    assert isinstance(decoded, Rejection) and decoded.reason is RejectReason.IN_FUTURE


def test_without_a_clock_event_time_is_not_checked() -> None:
    # Pure callers (tests, tools) that do not care about the clock keep working.
    assert isinstance(
        decode_event(event_bytes("like", occurred_at="2999-01-01T00:00:00Z"), 65536), LikeEvent
    )


def test_an_old_event_is_accepted_and_expires_by_its_ttl() -> None:
    # No lower bound at ingest: the category's TTL, counted from occurred_at, drops it at
    # route with an `expired` receipt (logic/routing.py), after dedupe has recorded its id.
    decoded = decode_event(event_bytes("like", occurred_at="2001-01-01T00:00:00Z"), 65536, CLOCK)
    assert isinstance(decoded, LikeEvent)
    n = to_notification(decoded, load_rules(), NOW)
    plan = plan_deliveries(n, None, None, load_rules(), default_renderer(), NOW)
    assert plan.deliveries == ()
    assert plan.receipt is not None
    assert (plan.receipt.status, plan.receipt.reason) == (ReceiptStatus.EXPIRED, "ttl_elapsed")


def test_the_replay_dry_run_applies_the_same_bound() -> None:
    counts = DryRunCounts()
    future = event_bytes("like", occurred_at="2999-01-01T00:00:00Z")
    counts.count_event(future, load_rules(), 65536, NOW, max_future_skew_s=300)
    counts.count_event(
        event_bytes("like", occurred_at=NOW.isoformat()), load_rules(), 65536, NOW, 300
    )
    assert counts.invalid == {"occurred_at_in_future": 1}
    assert counts.lanes == {"social": 1}


# -- numbers the parser cannot hold ---------------------------------------------------------


def _with_number(digits: str) -> bytes:
    raw = event_bytes("like")
    return raw.replace(b"{", b'{"unknown_extra": ' + digits.encode() + b", ", 1)


@pytest.mark.parametrize("sign", ["", "-"])
def test_a_5000_digit_integer_is_number_too_large_not_malformed(sign: str) -> None:
    raw = _with_number(sign + "9" * 5000)
    json.loads(raw.replace(b"9" * 5000, b"9"))  # otherwise the same, valid document
    decoded = decode_event(raw, 65536)
    assert isinstance(decoded, Rejection)
    assert decoded.reason is RejectReason.NUMBER_TOO_LARGE
    assert decoded.reason.value == "number_too_large"
    assert str(MAX_INT_DIGITS) in decoded.detail and "line 1 column" in decoded.detail


def test_the_digit_limit_is_where_the_parser_stops() -> None:
    # If pydantic-core ever moves its limit, MAX_INT_DIGITS (named in the detail) must follow.
    assert isinstance(decode_event(_with_number("9" * MAX_INT_DIGITS), 65536), LikeEvent)
    too_long = decode_event(_with_number("9" * (MAX_INT_DIGITS + 1)), 65536)
    assert isinstance(too_long, Rejection) and too_long.reason is RejectReason.NUMBER_TOO_LARGE


def test_truncated_json_is_still_malformed() -> None:
    decoded = decode_event(_with_number("9" * 10)[:-2], 65536)
    assert isinstance(decoded, Rejection) and decoded.reason is RejectReason.MALFORMED_JSON
