"""Every receipt Clarion writes is built here, one function per thing it is about. They are
sent by one module, `streams/receipts.py` (key: the recipient; it also counts them).

- `for_delivery`: a delivery's outcome (sinks, emit's `throttled`, escalate's `escalated`);
- `for_notification`: a notification that produced no delivery (`expired`, `suppressed`,
  `throttled`) or went out with fallback text (`degraded`);
- `for_confirmation`: what a client said about an item (`seen` / `read`, `not_in_inbox`);
- `for_feedback`: what a provider reported after accepting a send (`delivered`, `failed`).
"""

from __future__ import annotations

from datetime import datetime

from logic.provider_feedback import feedback_reason
from schemas.control import ClientAction, Confirmation, FeedbackKind, ProviderFeedback
from schemas.notifications import Delivery, InboxItem, Notification, Receipt, ReceiptStatus

NOT_IN_INBOX = "not_in_inbox"

FEEDBACK_STATUS = {
    FeedbackKind.DELIVERED: ReceiptStatus.DELIVERED,
    FeedbackKind.BOUNCED: ReceiptStatus.FAILED,
    FeedbackKind.COMPLAINED: ReceiptStatus.FAILED,
    FeedbackKind.FAILED: ReceiptStatus.FAILED,
}


def for_delivery(
    d: Delivery, status: ReceiptStatus, at: datetime, reason: str | None = None
) -> Receipt:
    """The outcome of one delivery."""
    return Receipt(
        notification_id=d.notification_id,
        recipient_id=d.recipient_id,
        lane=d.lane,
        status=status,
        at=at,
        delivery_id=d.delivery_id,
        channel=d.channel,
        reason=reason,
    )


def for_notification(n: Notification, status: ReceiptStatus, reason: str, at: datetime) -> Receipt:
    """A notification that produced no delivery (expired, suppressed, throttled), or a note
    about one that did (degraded)."""
    return Receipt(
        notification_id=n.notification_id,
        recipient_id=n.recipient_id,
        lane=n.lane,
        status=status,
        reason=reason,
        at=at,
    )


def for_confirmation(c: Confirmation, notification_id: str, item: InboxItem | None) -> Receipt:
    """`seen` or `read` for one id of a client's ack; `item` is the inbox item it names
    (None: in no inbox, reason `not_in_inbox`, lane unknown)."""
    return Receipt(
        notification_id=notification_id,
        recipient_id=c.recipient_id,
        lane=item.lane if item else None,
        status=ReceiptStatus.READ if c.action is ClientAction.READ else ReceiptStatus.SEEN,
        at=c.at,
        reason=None if item else NOT_IN_INBOX,
    )


def for_feedback(f: ProviderFeedback) -> Receipt:
    """What the provider reported: `delivered`, or `failed` with `<provider>:<reason>`.
    Feedback names no lane."""
    return Receipt(
        notification_id=f.notification_id,
        recipient_id=f.recipient_id,
        lane=None,
        status=FEEDBACK_STATUS[f.kind],
        at=f.at,
        delivery_id=f.delivery_id,
        channel=f.channel,
        reason=None if f.kind is FeedbackKind.DELIVERED else feedback_reason(f),
    )
