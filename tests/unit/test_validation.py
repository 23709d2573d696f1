import json

import pytest

from logic.validation import Rejection, RejectReason, decode_event
from schemas.events import LikeEvent, LiveStartedEvent, PaymentEvent
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
