"""Records that steer deliveries after the first try: retries, escalation steps, client
confirmations and provider feedback. All are keyed by recipient id, like the deliveries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import Channel, Id, Lane
from schemas.notifications import Delivery


class RetryRequest(BaseModel):
    """A delivery that failed transiently, to be republished on its topic at `due_at`."""

    model_config = ConfigDict(frozen=True)

    delivery: Delivery  # with `attempt` already the number of the next try
    due_at: datetime
    last_reason: str


class EscalationStep(BaseModel):
    """Check at `due_at` whether the user confirmed the notification; if not, send the
    first of `steps` and schedule the rest."""

    model_config = ConfigDict(frozen=True)

    notification_id: str
    recipient_id: str
    lane: Lane
    due_at: datetime
    confirm_within_s: float
    steps: list[list[Delivery]]


class ClientAction(StrEnum):
    SEEN = "seen"  # shown in a list
    READ = "read"  # opened: also confirms it (stops escalation)


class Confirmation(BaseModel):
    """What a client says about notifications it has (POST /inapp/ack)."""

    model_config = ConfigDict(frozen=True)

    recipient_id: Id
    notification_ids: list[str] = Field(min_length=1, max_length=500)
    action: ClientAction
    at: datetime


class FeedbackKind(StrEnum):
    DELIVERED = "delivered"
    BOUNCED = "bounced"  # the address is gone: remove it
    COMPLAINED = "complained"  # spam report / unsubscribe: opt the channel out
    FAILED = "failed"


class ProviderFeedback(BaseModel):
    """An asynchronous outcome a provider reported later (SendGrid Event Webhook)."""

    model_config = ConfigDict(frozen=True)

    recipient_id: str
    delivery_id: str
    notification_id: str
    channel: Channel
    provider: str
    kind: FeedbackKind
    address: str
    reason: str
    at: datetime
    # The try the provider accepted (Delivery.attempt, echoed in the mail's custom args);
    # None for mail sent before Clarion set it.
    attempt: int | None = None
