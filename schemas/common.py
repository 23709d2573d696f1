"""Vocabulary shared by every model: categories, lanes, channels, identifiers."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

# Ids travel as Kafka keys and in URLs: keep them short and unambiguous.
Id = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@\-]+$")
]
ShortText = Annotated[str, StringConstraints(max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=2000)]


class Category(StrEnum):
    LIKE = "like"
    COMMENT = "comment"
    FOLLOW = "follow"
    MENTION = "mention"
    MESSAGE = "message"
    PAYMENT = "payment"
    SECURITY_ALERT = "security_alert"
    MARKETING = "marketing"
    LIVE_STARTED = "live_started"


class Lane(StrEnum):
    """Priority lanes; each is its own topic chain so one lane's backlog never delays another."""

    CRITICAL = "critical"
    HIGH = "high"
    SOCIAL = "social"
    BULK = "bulk"


class Channel(StrEnum):
    IN_APP = "in_app"
    PUSH = "push"
    EMAIL = "email"
    SMS = "sms"
    WEBHOOK = "webhook"
