"""Decide which channels and targets a notification goes to, given the user's state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from logic.ids import delivery_id
from logic.receipts import for_notification
from logic.render import Renderer
from logic.rules import Rules
from schemas.common import Category, Channel
from schemas.notifications import Delivery, Notification, Receipt, ReceiptStatus, Target
from schemas.users import ContactPoints, Preferences

# Receipt reason of a notification sent with fallback text (logic/render.py).
TEMPLATE_ERROR = "template_error"


@dataclass(frozen=True)
class RoutePlan:
    deliveries: tuple[Delivery, ...]
    # Set when the notification produces no delivery at all, to say why.
    receipt: Receipt | None = None
    # Receipts about the notification that go along with its deliveries (text from the
    # fallback because the template failed).
    notes: tuple[Receipt, ...] = ()


def choose_channels(category: Category, rules: Rules, prefs: Preferences | None) -> list[Channel]:
    """The rule's channels minus the user's opt-outs; required channels always stay."""
    rule = rules.for_category(category)
    if prefs is None:
        return list(rule.channels)
    opted_out = prefs.opt_out.get(category, frozenset()) | prefs.disabled_channels
    return [c for c in rule.channels if c in rule.required or c not in opted_out]


def targets_for(
    channel: Channel, recipient_id: str, contacts: ContactPoints | None
) -> list[Target]:
    if channel is Channel.IN_APP:
        return [Target(address=recipient_id)]
    if contacts is None:
        return []
    match channel:
        case Channel.PUSH:
            return [Target(address=d.token, platform=d.platform) for d in contacts.devices]
        case Channel.EMAIL:
            return [Target(address=contacts.email)] if contacts.email else []
        case Channel.SMS:
            return [Target(address=contacts.phone)] if contacts.phone else []
        case Channel.WEBHOOK:
            return [Target(address=contacts.webhook_url)] if contacts.webhook_url else []
    return []


def plan_deliveries(
    notification: Notification,
    prefs: Preferences | None,
    contacts: ContactPoints | None,
    rules: Rules,
    renderer: Renderer,
    now: datetime,
) -> RoutePlan:
    if notification.expires_at is not None and now >= notification.expires_at:
        return RoutePlan(
            (), for_notification(notification, ReceiptStatus.EXPIRED, "ttl_elapsed", now)
        )
    channels = choose_channels(notification.category, rules, prefs)
    if not channels:
        return RoutePlan(
            (), for_notification(notification, ReceiptStatus.SUPPRESSED, "opted_out", now)
        )
    rendered = renderer.render(notification, prefs.locale if prefs else "en")
    deliveries = tuple(
        Delivery(
            delivery_id=delivery_id(notification.notification_id, channel, target.address),
            notification_id=notification.notification_id,
            recipient_id=notification.recipient_id,
            category=notification.category,
            lane=notification.lane,
            channel=channel,
            target=target,
            title=rendered.title,
            body=rendered.body,
            url=notification.object.url,
            image_url=notification.object.image_url,
            data=notification.data,
            count=notification.count,
            occurred_at=notification.occurred_at,
            created_at=now,
            expires_at=notification.expires_at,
        )
        for channel in channels
        for target in targets_for(channel, notification.recipient_id, contacts)
    )
    if not deliveries:
        return RoutePlan(
            (), for_notification(notification, ReceiptStatus.SUPPRESSED, "no_contact", now)
        )
    if rendered.fallback is not None:
        degraded = for_notification(notification, ReceiptStatus.DEGRADED, TEMPLATE_ERROR, now)
        return RoutePlan(deliveries, notes=(degraded,))
    return RoutePlan(deliveries)
