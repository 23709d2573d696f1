from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from logic.classify import to_notification
from logic.ids import delivery_id, notification_id
from logic.rules import load_rules, parse_rules
from logic.validation import decode_event
from schemas.common import Category, Channel, Lane
from schemas.events import PersonalEvent
from tests.factories import event_bytes

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _event(kind: str, **overrides: object) -> PersonalEvent:
    decoded = decode_event(event_bytes(kind, **overrides), 65536)
    assert not hasattr(decoded, "reason"), decoded
    return decoded  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("kind", "lane"),
    [
        ("payment", Lane.CRITICAL),
        ("security_alert", Lane.CRITICAL),
        ("message", Lane.HIGH),
        ("like", Lane.SOCIAL),
        ("comment", Lane.SOCIAL),
        ("follow", Lane.SOCIAL),
        ("mention", Lane.SOCIAL),
        ("marketing", Lane.BULK),
    ],
)
def test_default_rules_put_each_category_on_its_lane(kind: str, lane: Lane) -> None:
    assert to_notification(_event(kind), load_rules(), NOW).lane is lane


def test_notification_carries_ttl_from_occurrence_and_category_data() -> None:
    occurred = NOW - timedelta(minutes=5)
    n = to_notification(_event("payment", occurred_at=occurred.isoformat()), load_rules(), NOW)
    assert n.expires_at == occurred + timedelta(seconds=86400)
    assert n.data == {"amount": "12.50", "currency": "EUR", "status": "succeeded"}
    assert n.created_at == NOW


def test_ids_are_deterministic_so_replays_map_to_the_same_notification() -> None:
    assert notification_id("e1", "alice") == notification_id("e1", "alice")
    assert notification_id("e1", "alice") != notification_id("e1", "bob")
    d1 = delivery_id("n", Channel.EMAIL, "alice@example.com")
    assert d1 == delivery_id("n", Channel.EMAIL, "alice@example.com")
    assert "alice" not in d1  # contact points never leak into ids


def test_rules_file_can_move_a_category_to_another_lane(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "logic" / "rules.toml").read_text()
    text = text.replace('[categories.like]\nlane = "social"', '[categories.like]\nlane = "bulk"')
    rules = parse_rules(text)
    assert rules.for_category(Category.LIKE).lane is Lane.BULK


def test_rules_must_cover_every_category() -> None:
    with pytest.raises(ValidationError, match="missing"):
        parse_rules('[categories.like]\nlane = "social"\nchannels = ["in_app"]\n')


def test_required_channel_must_be_a_default_channel() -> None:
    text = (Path(__file__).parents[2] / "logic" / "rules.toml").read_text()
    text = text.replace(
        'required = ["in_app", "email"]\nttl_s = 86400\n\n[categories.security',
        'required = ["sms"]\nttl_s = 86400\n\n[categories.security',
    )
    with pytest.raises(ValidationError, match="required"):
        parse_rules(text)
