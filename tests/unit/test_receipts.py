"""logic/receipts.py: the one builder of receipts. Each test pins every field, as the places
that built receipts themselves before (streams/receipts.py, logic/routing.py,
agents/confirm.py, agents/feedback.py) set them; the metric each is counted in is checked
with streams/metrics.receipt_sent, which streams/receipts.send calls for every receipt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from logic import receipts
from logic.classify import to_notification
from logic.rules import load_rules
from logic.validation import decode_event
from schemas.common import Category, Channel, Lane
from schemas.control import ClientAction, Confirmation, FeedbackKind, ProviderFeedback
from schemas.notifications import (
    Delivery,
    InboxItem,
    Notification,
    Receipt,
    ReceiptStatus,
    Target,
)
from streams import metrics
from tests.factories import event_bytes

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _notification(kind: str) -> Notification:
    event = decode_event(event_bytes(kind, occurred_at=AT.isoformat()), 65536)
    return to_notification(event, load_rules(), AT)  # type: ignore[arg-type]


def _delivery() -> Delivery:
    return Delivery(
        delivery_id="d1",
        notification_id="n1",
        recipient_id="alice",
        category=Category.MESSAGE,
        lane=Lane.HIGH,
        channel=Channel.PUSH,
        target=Target(address="fcm-token", platform="fcm"),
        title="Bob",
        body="hey",
        occurred_at=AT,
        created_at=AT,
    )


def _feedback(kind: FeedbackKind) -> ProviderFeedback:
    return ProviderFeedback(
        recipient_id="alice",
        delivery_id="d1",
        notification_id="n1",
        channel=Channel.EMAIL,
        provider="sendgrid",
        kind=kind,
        address="alice@example.com",
        reason="550 5.1.1 unknown user",
        at=AT,
    )


def _item(lane: Lane) -> InboxItem:
    return InboxItem(
        id="i1",
        seq=1,
        notification_id="n1",
        category=Category.MESSAGE,
        lane=lane,
        title="Bob",
        body="hey",
        created_at=AT,
    )


def test_delivery_receipt_names_the_delivery() -> None:
    r = receipts.for_delivery(_delivery(), ReceiptStatus.RETRYING, AT, "http_503")
    assert r == Receipt(
        notification_id="n1",
        recipient_id="alice",
        lane=Lane.HIGH,
        status=ReceiptStatus.RETRYING,
        at=AT,
        delivery_id="d1",
        channel=Channel.PUSH,
        reason="http_503",
    )
    assert receipts.for_delivery(_delivery(), ReceiptStatus.SENT, AT).reason is None


def test_notification_receipt_has_no_delivery_or_channel() -> None:
    n = _notification("like")
    r = receipts.for_notification(n, ReceiptStatus.EXPIRED, "ttl_elapsed", AT)
    assert r == Receipt(
        notification_id=n.notification_id,
        recipient_id=n.recipient_id,
        lane=n.lane,
        status=ReceiptStatus.EXPIRED,
        at=AT,
        reason="ttl_elapsed",
    )


@pytest.mark.parametrize(
    ("action", "status"), [(ClientAction.SEEN, ReceiptStatus.SEEN), (ClientAction.READ, "read")]
)
def test_confirmation_receipt_is_seen_or_read_with_the_items_lane(
    action: ClientAction, status: ReceiptStatus
) -> None:
    c = Confirmation(recipient_id="alice", notification_ids=["n1", "n2"], action=action, at=AT)
    assert receipts.for_confirmation(c, "n1", _item(Lane.SOCIAL)) == Receipt(
        notification_id="n1", recipient_id="alice", lane=Lane.SOCIAL, status=status, at=AT
    )
    assert receipts.for_confirmation(c, "n2", None) == Receipt(
        notification_id="n2",
        recipient_id="alice",
        lane=None,
        status=status,
        at=AT,
        reason="not_in_inbox",
    )


@pytest.mark.parametrize(
    ("kind", "status", "reason"),
    [
        (FeedbackKind.DELIVERED, ReceiptStatus.DELIVERED, None),
        (FeedbackKind.BOUNCED, ReceiptStatus.FAILED, "sendgrid:550 5.1.1 unknown user"),
        (FeedbackKind.COMPLAINED, ReceiptStatus.FAILED, "sendgrid:550 5.1.1 unknown user"),
        (FeedbackKind.FAILED, ReceiptStatus.FAILED, "sendgrid:550 5.1.1 unknown user"),
    ],
)
def test_feedback_receipt_names_the_delivery_but_no_lane(
    kind: FeedbackKind, status: ReceiptStatus, reason: str | None
) -> None:
    assert receipts.for_feedback(_feedback(kind)) == Receipt(
        notification_id="n1",
        recipient_id="alice",
        lane=None,
        status=status,
        at=AT,
        delivery_id="d1",
        channel=Channel.EMAIL,
        reason=reason,
    )


def _sample(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_every_receipt_is_counted_by_what_it_is_about() -> None:
    """Delivery receipts (feedback's too, lane "") in delivery_outcomes; a notification
    dropped or degraded in its own counter; a client's seen/read in none."""
    outcomes = "clarion_delivery_outcomes_total"
    cases = [
        (
            receipts.for_delivery(_delivery(), ReceiptStatus.SENT, AT),
            outcomes,
            {"lane": "high", "channel": "push", "status": "sent"},
        ),
        (
            receipts.for_feedback(_feedback(FeedbackKind.BOUNCED)),
            outcomes,
            {"lane": "", "channel": "email", "status": "failed"},
        ),
        (
            receipts.for_notification(_notification("like"), "suppressed", "opted_out", AT),
            "clarion_notifications_dropped_total",
            {"lane": "social", "status": "suppressed", "reason": "opted_out"},
        ),
        (
            receipts.for_notification(_notification("like"), "degraded", "template_error", AT),
            "clarion_notifications_degraded_total",
            {"lane": "social", "reason": "template_error"},
        ),
    ]
    for receipt, name, labels in cases:
        before = _sample(name, **labels)
        metrics.receipt_sent(receipt)
        assert _sample(name, **labels) == before + 1, (receipt, name)

    c = Confirmation(recipient_id="alice", notification_ids=["n1"], action="read", at=AT)
    everything = {
        (s.name, tuple(s.labels.items()), s.value)
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name.startswith("clarion_")
    }
    metrics.receipt_sent(receipts.for_confirmation(c, "n1", _item(Lane.HIGH)))
    assert everything == {
        (s.name, tuple(s.labels.items()), s.value)
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name.startswith("clarion_")
    }
