"""Provider webhooks' events → ProviderFeedback records (which Clarion delivery, what
happened). SendGrid echoes a mail's custom_args as top-level fields of each event."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from schemas.common import Channel
from schemas.control import FeedbackKind, ProviderFeedback

_SENDGRID_KINDS = {
    "delivered": FeedbackKind.DELIVERED,
    "bounce": FeedbackKind.BOUNCED,
    "dropped": FeedbackKind.BOUNCED,  # SendGrid drops mail to addresses that bounced before
    "spamreport": FeedbackKind.COMPLAINED,
    "unsubscribe": FeedbackKind.COMPLAINED,
    "group_unsubscribe": FeedbackKind.COMPLAINED,
}


def feedback_reason(f: ProviderFeedback) -> str:
    """`<provider>:<reason>`: the reason of the feedback's receipt, dead letter and profile
    update."""
    return f"{f.provider}:{f.reason}"


def _attempt(value: Any) -> int | None:
    """The `clarion_attempt` custom arg (a string, as custom args are); None if absent or
    not a small non-negative integer (mail sent before Clarion set it, or not Clarion's)."""
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None


def from_sendgrid(events: Iterable[dict[str, Any]]) -> list[ProviderFeedback]:
    """The events that concern a Clarion delivery and change something. `deferred`,
    `processed`, `open` and `click` change nothing here and are left out, as are events
    without Clarion's custom args (mail sent by something else on the account)."""
    out: list[ProviderFeedback] = []
    for e in events:
        kind = _SENDGRID_KINDS.get(str(e.get("event")))
        recipient = e.get("clarion_recipient_id")
        delivery = e.get("clarion_delivery_id")
        notification = e.get("clarion_notification_id")
        if kind is None or not (recipient and delivery and notification and e.get("email")):
            continue
        timestamp = e.get("timestamp")
        at = (
            datetime.fromtimestamp(float(timestamp), UTC)
            if isinstance(timestamp, int | float)
            else datetime.now(UTC)
        )
        out.append(
            ProviderFeedback(
                recipient_id=str(recipient),
                delivery_id=str(delivery),
                notification_id=str(notification),
                channel=Channel.EMAIL,
                provider="sendgrid",
                kind=kind,
                address=str(e["email"]),
                reason=str(e.get("reason") or e.get("type") or e["event"]),
                at=at,
                attempt=_attempt(e.get("clarion_attempt")),
            )
        )
    return out
