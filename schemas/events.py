"""Domain events (Clarion's input): one model per `type`, a discriminated union over them."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from schemas.common import Id, LongText, ShortText

SCHEMA_VERSION = 1


class ObjectRef(BaseModel):
    """What the event is about: a photo, a post, a conversation, an invoice…"""

    model_config = ConfigDict(frozen=True)

    kind: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    id: Id
    title: ShortText | None = None
    url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    # A content-addressed, immutable media URL on a CDN. It travels by reference to FCM
    # (notification image), APNs (mutable-content attachment), email and in-app; Clarion
    # never downloads or proxies media.
    image_url: Annotated[str, StringConstraints(pattern=r"^https://", max_length=2048)] | None = (
        None
    )


class Audience(BaseModel):
    """Who a broadcast goes to; resolved by the fan-out stage, never inline."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["followers"] = "followers"
    of: Id


class _EventBase(BaseModel):
    # Unknown extra fields are ignored so producers can add fields before Clarion reads them.
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1]
    event_id: Id
    occurred_at: AwareDatetime
    actor_id: Id
    actor_name: ShortText | None = None
    object: ObjectRef


class _Personal(_EventBase):
    recipient_id: Id


class LikeEvent(_Personal):
    type: Literal["like"]


class CommentEvent(_Personal):
    type: Literal["comment"]
    comment_id: Id
    text: LongText


class FollowEvent(_Personal):
    type: Literal["follow"]


class MentionEvent(_Personal):
    type: Literal["mention"]
    text: LongText


class MessageEvent(_Personal):
    type: Literal["message"]
    conversation_id: Id
    preview: Annotated[str, StringConstraints(max_length=500)]


class PaymentEvent(_Personal):
    type: Literal["payment"]
    amount: Annotated[Decimal, Field(max_digits=18, decimal_places=2)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    status: Literal["succeeded", "failed", "refunded"]


class SecurityAlertEvent(_Personal):
    type: Literal["security_alert"]
    alert: Literal["new_login", "password_changed", "mfa_disabled", "suspicious_activity"]
    ip: ShortText | None = None
    location: ShortText | None = None


class MarketingEvent(_Personal):
    type: Literal["marketing"]
    campaign_id: Id
    title: ShortText
    body: LongText


class LiveStartedEvent(_EventBase):
    type: Literal["live_started"]
    audience: Audience
    stream_title: ShortText


PersonalEvent = (
    LikeEvent
    | CommentEvent
    | FollowEvent
    | MentionEvent
    | MessageEvent
    | PaymentEvent
    | SecurityAlertEvent
    | MarketingEvent
)
DomainEvent = Annotated[PersonalEvent | LiveStartedEvent, Field(discriminator="type")]

domain_event_adapter: TypeAdapter[DomainEvent] = TypeAdapter(DomainEvent)
