"""The pure parts of the operator views: token check, masking and rendering,
lag arithmetic, and the OpenAPI builder."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import ValidationError

from logic import lag as lanes_lag
from logic import windows
from logic.admin_auth import MISSING, NOT_CONFIGURED, WRONG, check_admin
from logic.admin_render import (
    clamp_limit,
    mask_contact_points,
    render_struct,
    window_summary,
)
from logic.masking import describe_invalid
from logic.openapi import Param, Route, build
from logic.rules import load_rules
from schemas.admin import ErrorBody, LagsResponse, TableRows
from schemas.common import Lane
from schemas.users import ContactPoints
from tables.rows import BucketRow, LedgerEntry
from tests.stages.inputs import notification

TOKEN = "s3cret-admin-token-0123456789"


def test_admin_token_is_required_and_compared() -> None:
    assert check_admin(f"Bearer {TOKEN}", TOKEN) is None
    assert check_admin(f"bearer   {TOKEN} ", TOKEN) is None
    assert check_admin(None, TOKEN) == MISSING
    assert check_admin("", TOKEN) == MISSING
    assert check_admin(f"Basic {TOKEN}", TOKEN) == MISSING
    assert check_admin("Bearer ", TOKEN) == MISSING
    assert check_admin("Bearer wrong", TOKEN) == WRONG
    assert check_admin(f"Bearer {TOKEN}x", TOKEN) == WRONG
    assert check_admin(f"Bearer {TOKEN[:-1]}", TOKEN) == WRONG
    # Not configured: nobody gets in, not even with an empty token.
    assert check_admin("Bearer ", None) == NOT_CONFIGURED
    assert check_admin(f"Bearer {TOKEN}", "") == NOT_CONFIGURED
    assert (MISSING.status, WRONG.status, NOT_CONFIGURED.status) == (401, 403, 403)
    assert "CLARION_ADMIN_TOKEN" in NOT_CONFIGURED.reason


def _contacts() -> dict[str, Any]:
    cp = ContactPoints(
        user_id="alice",
        devices=[
            {"token": "fcm-token-abcdefghijklmnopqrstuvwxyz", "platform": "fcm"},
            {"token": "a1b2c3d4e5f6a7b8c9d0", "platform": "apns"},
        ],
        email="alice.smith@example.com",
        phone="+15551234567",
        webhook_url="https://hooks.example.com/T000/B000/XXXXsecretpath",
    )
    return cp.model_dump(mode="json")


def test_contact_points_are_masked() -> None:
    raw = _contacts()
    masked = mask_contact_points(raw)
    text = json.dumps(masked)
    for secret in (
        "fcm-token-abcdefghijklmnopqrstuvwxyz",
        "a1b2c3d4e5f6a7b8c9d0",
        "alice.smith@example.com",
        "+15551234567",
        "1234567",
        "XXXXsecretpath",
        "/T000/B000",
    ):
        assert secret not in text, secret
    assert masked["user_id"] == "alice"
    assert masked["email"] == "a***@example.com"
    assert masked["webhook_url"] == "https://hooks.example.com/***"
    assert [d["platform"] for d in masked["devices"]] == ["fcm", "apns"]


def test_unknown_contact_fields_do_not_leak() -> None:
    masked = mask_contact_points(
        {
            "user_id": "bob",
            "webhook_secret": "whsec_0123456789abcdef",
            "extra_numbers": ["+15550000000"],
            "nickname": {"first": "Bob"},
            "verified": True,
            "devices": ["not-a-device-object-token"],
        }
    )
    text = json.dumps(masked)
    assert "0123456789abcdef" not in text and "+15550000000" not in text
    assert "not-a-device-object-token" not in text
    assert masked["verified"] is True


def test_typed_rows_are_shown_with_their_field_names() -> None:
    # Stored as JSON lists, shown as objects (the names the views showed before typed rows).
    bucket = BucketRow(3.5, 1700000000.0)
    assert render_struct(bucket) == {"tokens": 3.5, "updated_at": 1700000000.0}
    entry = LedgerEntry(1.0, "msg-1")
    assert render_struct(entry) == {"sent_at": 1.0, "provider_message_id": "msg-1"}
    assert render_struct("odd") == "odd"  # an unexpected shape is shown as it is


def test_window_summary() -> None:
    n = notification(load_rules(), "like", recipient_id="alice")
    w = windows.open_window(n, "like:photo:p1", ts=10.0, size=30.0, closed_until=0.0)
    w = w.model_copy(update={"count": 7, "actor_ids": ("a", "b", "c"), "deadline": 45.0})
    s = window_summary(w, 3)
    assert s["partition"] == 3 and s["count"] == 7 and s["actors"] == 3
    assert s["deadline"] == 45.0 and s["lane"] == "social" and s["group_key"] == "like:photo:p1"
    assert s["recipient_id"] == "alice" and (s["window_start"], s["window_end"]) == (0.0, 30.0)


def test_limit_parameter() -> None:
    assert clamp_limit(None) == 100
    assert clamp_limit("") == 100
    assert clamp_limit("5") == 5
    assert clamp_limit("100000") == 1000
    with pytest.raises(ValueError):
        clamp_limit("0")
    with pytest.raises(ValueError):
        clamp_limit("ten")


def _row(topic: str, partition: int, lag: int | None) -> dict[str, Any]:
    return {
        "topic": topic,
        "partition": partition,
        "highwater": None if lag is None else 100,
        "committed": None if lag is None else 100 - lag,
        "position": None,
        "lag": lag,
        "served_by": "http://127.0.0.1:1",
    }


def test_lane_lag_arithmetic() -> None:
    assert lanes_lag.partition_lag(100, 40) == 60
    assert lanes_lag.partition_lag(100, None) == 100  # nothing committed: from offset 0
    assert lanes_lag.partition_lag(None, 5) is None  # no fetch yet
    assert lanes_lag.partition_lag(10, 12) == 0  # never negative
    topics = lanes_lag.lane_topics("t.")
    assert topics["t.notifications.bulk"] is Lane.BULK
    assert topics["t.deliveries.push.critical"] is Lane.CRITICAL
    assert "t.receipts" not in topics and "notifications.bulk" not in topics
    rows = [
        _row("t.notifications.bulk", 1, 5),
        _row("t.notifications.bulk", 0, 7),
        _row("t.deliveries.email.bulk", 0, None),
        _row("t.deliveries.sms.critical", 2, 1),
        _row("t.receipts", 0, 99),
    ]
    lanes = {x["lane"]: x for x in lanes_lag.by_lane(rows, topics)}
    assert list(lanes) == [lane.value for lane in Lane]
    assert lanes["bulk"]["total_lag"] == 12
    assert [(r["topic"], r["partition"]) for r in lanes["bulk"]["partitions"]] == [
        ("t.deliveries.email.bulk", 0),
        ("t.notifications.bulk", 0),
        ("t.notifications.bulk", 1),
    ]
    assert lanes["critical"]["total_lag"] == 1 and lanes["high"]["partitions"] == []
    LagsResponse.model_validate({"workers": [], "lanes": list(lanes.values())})


def test_openapi_document_is_valid() -> None:
    routes = [
        Route(
            "/admin/tables/inbox/{key}",
            "inbox",
            "rows",
            TableRows,
            (Param("key", "path", "user id"), Param("limit", "query", "n", {"type": "integer"})),
        ),
        Route("/admin/lags", "lags", "lags", LagsResponse),
    ]
    doc = build("t", "1", "d", routes, ErrorBody)
    validate(doc)  # raises on an invalid OpenAPI 3.1 document
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/admin/tables/inbox/{key}", "/admin/lags"}
    op = doc["paths"]["/admin/tables/inbox/{key}"]["get"]
    assert op["security"] == [{"adminToken": []}]
    assert {"200", "401", "403", "503"} <= set(op["responses"])
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.split("/")[-1] in doc["components"]["schemas"]
    assert json.loads(json.dumps(doc)) == doc  # plain JSON


def test_validation_errors_are_described_without_the_input() -> None:
    with pytest.raises(ValidationError) as info:
        ContactPoints.model_validate(
            {"user_id": "a", "email": "bob smith@example.com", "phone": "15551234567"}
        )
    assert "15551234567" in str(info.value)  # pydantic's own message quotes it ...
    text = describe_invalid(info.value)
    assert "15551234567" not in text and "smith" not in text  # ... ours does not
    assert "phone" in text and "email" in text
    with pytest.raises(ValidationError) as bad_json:
        ContactPoints.model_validate_json(b'{"user_id": "a", "email": "x@y.z", ')
    assert "x@y.z" not in describe_invalid(bad_json.value)
    assert describe_invalid(ValueError("secret@example.com")) == "ValueError"
