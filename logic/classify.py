"""Classify a personal domain event into a notification on a priority lane."""

from __future__ import annotations

from datetime import datetime

from logic.ids import notification_id
from logic.rules import Rules
from schemas.common import Category
from schemas.events import (
    CommentEvent,
    MarketingEvent,
    MentionEvent,
    MessageEvent,
    PaymentEvent,
    PersonalEvent,
    SecurityAlertEvent,
)
from schemas.notifications import Notification


def event_data(event: PersonalEvent) -> dict[str, str]:
    """The category-specific fields the templates need, flattened to strings."""
    match event:
        case CommentEvent():
            return {"text": event.text, "comment_id": event.comment_id}
        case MentionEvent():
            return {"text": event.text}
        case MessageEvent():
            return {"preview": event.preview, "conversation_id": event.conversation_id}
        case PaymentEvent():
            return {
                "amount": f"{event.amount:.2f}",
                "currency": event.currency,
                "status": event.status,
            }
        case SecurityAlertEvent():
            data: dict[str, str] = {"alert": event.alert}
            if event.ip:
                data["ip"] = event.ip
            if event.location:
                data["location"] = event.location
            return data
        case MarketingEvent():
            return {"campaign_id": event.campaign_id, "title": event.title, "body": event.body}
        case _:
            return {}


def to_notification(
    event: PersonalEvent,
    rules: Rules,
    now: datetime,
    source_tp: str | None = None,
    source_offset: int | None = None,
) -> Notification:
    category = Category(event.type)
    rule = rules.for_category(category)
    ttl = rule.ttl
    # model_construct: every field comes from a validated event or from Clarion itself, so a
    # second validation pass (about a fifth of ingest's own CPU per event) checks nothing.
    return Notification.model_construct(
        notification_id=notification_id(event.event_id, event.recipient_id),
        recipient_id=event.recipient_id,
        category=category,
        lane=rule.lane,
        event_id=event.event_id,
        actor_id=event.actor_id,
        actor_name=event.actor_name,
        object=event.object,
        occurred_at=event.occurred_at,
        created_at=now,
        # TTL counts from when it happened, not from when Clarion saw it.
        expires_at=None if ttl is None else event.occurred_at + ttl,
        data=event_data(event),
        source_tp=source_tp,
        source_offset=source_offset,
    )
