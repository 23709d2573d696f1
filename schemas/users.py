"""Per-user state fed from compacted topics: preferences and contact points."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from schemas.common import Category, Channel, Id
from schemas.quiet_hours import parse_quiet_hours


class DigestFrequency(StrEnum):
    INSTANT = "instant"  # the category's own aggregation window (30-60 s)
    HOURLY = "hourly"
    DAILY = "daily"
    OFF = "off"  # no notifications of this category at all


class Preferences(BaseModel):
    """A user's choices. Absent user = defaults (everything the rules allow, English, UTC)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    user_id: Id
    locale: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] = "en"
    timezone: str = "UTC"
    # category -> channels the user turned off for it
    opt_out: dict[Category, frozenset[Channel]] = {}
    # channels turned off for every category
    disabled_channels: frozenset[Channel] = frozenset()
    # "22:00-07:00" in `timezone`: non-critical notifications are held until it ends
    quiet_hours: str | None = None
    digest: dict[Category, DigestFrequency] = {}
    # per-channel override of the rate limit (notifications per hour)
    rate_limits: dict[Channel, Annotated[float, Field(gt=0)]] = {}
    updated_at: AwareDatetime | None = None

    @field_validator("quiet_hours")
    @classmethod
    def _valid_quiet_hours(cls, value: str | None) -> str | None:
        if value is not None:
            parse_quiet_hours(value)  # raises ValueError with the reason
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value


class Device(BaseModel):
    model_config = ConfigDict(frozen=True)

    token: Annotated[str, StringConstraints(min_length=8, max_length=4096)]
    platform: Literal["fcm", "apns"]


class ContactPoints(BaseModel):
    """Where a user can be reached. In-app needs no contact point: it is the user id."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    user_id: Id
    devices: tuple[Device, ...] = ()
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")] | None = None  # E.164
    webhook_url: (
        Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048)] | None
    ) = None
    updated_at: AwareDatetime | None = None
