"""The lane policy: deliver now, gather into an aggregation window, or drop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from logic.quiet_hours import parse_quiet_hours, quiet_until
from logic.rules import CategoryRule
from schemas.common import Lane
from schemas.notifications import Notification
from schemas.users import DigestFrequency, Preferences

# A notification held only by quiet hours (no window of its own) joins a window this long,
# so several held messages from one conversation go out as one.
HELD_WINDOW_S = 60.0
_FREQUENCY_WINDOW_S = {DigestFrequency.HOURLY: 3600.0, DigestFrequency.DAILY: 86400.0}


class Route(StrEnum):
    DELIVER = "deliver"
    DIGEST = "digest"
    SUPPRESS = "suppress"


@dataclass(frozen=True)
class Decision:
    route: Route
    window_s: float | None = None
    hold_until: float | None = None  # unix seconds: not before this (quiet hours)
    reason: str | None = None


def quiet_end(prefs: Preferences | None, now: datetime) -> float | None:
    """When the user's quiet hours end, if `now` is inside them (unix seconds)."""
    if prefs is None or not prefs.quiet_hours:
        return None
    until = quiet_until(now, parse_quiet_hours(prefs.quiet_hours), prefs.timezone)
    return until.timestamp() if until else None


def decide(
    n: Notification, rule: CategoryRule, prefs: Preferences | None, now: datetime
) -> Decision:
    # Critical bypasses aggregation, rate limits and quiet hours, whatever else is set.
    if rule.lane is Lane.CRITICAL:
        return Decision(Route.DELIVER)
    frequency = prefs.digest.get(n.category) if prefs else None
    if frequency is DigestFrequency.OFF:
        return Decision(Route.SUPPRESS, reason="digest_off")
    window = _FREQUENCY_WINDOW_S.get(frequency, rule.window_s) if frequency else rule.window_s
    hold = quiet_end(prefs, now)
    if window is None and hold is None:
        return Decision(Route.DELIVER)
    return Decision(Route.DIGEST, window_s=window or HELD_WINDOW_S, hold_until=hold)
