"""Per-user quiet hours: a daily local wall-clock window in which notifications are held.

The window is half-open, [start, end), in the user's IANA time zone. One quiet period is
one occurrence of that window: it starts on local day D at `start` and ends at `end` on
day D (when start < end) or on day D + 1 (when start > end, i.e. it crosses midnight).

Daylight-saving transitions are resolved by one rule for both edges: an edge happens at
the *first instant the local clock reads that wall time or later*. So:

- spring forward, edge inside the gap (02:30 on a day that jumps 02:00 -> 03:00): the edge
  is the end of the gap, 03:00 local;
- fall back, edge inside the repeated hour (01:30 on a day that goes 02:00 -> 01:00): the
  edge is the first 01:30 (fold=0). The repeated hour does not start the period again:
  membership is decided on real instants, not on what the clock reads.

Either way a quiet period lasts its nominal length give or take the DST shift, never more,
and its end always reads exactly `end` on the local clock whenever that time exists.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# The format and the value type are the schema's (Preferences validates the field); they are
# re-exported here for the logic that reads them.
from schemas.quiet_hours import QuietHours, parse_quiet_hours

__all__ = ["QuietHours", "parse_quiet_hours", "quiet_until"]


def quiet_until(now: datetime, quiet: QuietHours | None, tz: str) -> datetime | None:
    """If `now` (aware, any tz) falls inside the user's quiet period in IANA zone `tz`,
    return the aware UTC datetime when the quiet period ends (the first instant
    notifications may go out again); else None.

    The result, when not None, is always later than `now` and less than 24 hours plus the
    DST shift (so at most 25 hours in every current zone) after it.
    DST edges follow the module rule: a nonexistent edge time means the end of the gap, an
    ambiguous one its first occurrence. Raises ValueError for a naive `now` and
    zoneinfo.ZoneInfoNotFoundError for an unknown zone.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        # astimezone() would silently read a naive value as the *server's* local time.
        raise ValueError("now must be timezone-aware")
    if quiet is None or quiet.is_empty:
        return None
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    # The period containing `now` started on now's local day or the day before: every
    # instant before an edge reads an earlier wall time than the edge. The day after only
    # matters if the clock falls back across midnight after that day's start; cheap to add.
    for days in (-1, 0, 1):
        start_day = today + timedelta(days=days)
        end_day = start_day + timedelta(days=1) if quiet.crosses_midnight else start_day
        begins = _first_instant_at(start_day, quiet.start, zone)
        ends = _first_instant_at(end_day, quiet.end, zone)
        # Edges are monotone in wall time, so the daily periods are disjoint and ordered:
        # at most one contains `now`.
        if begins <= now < ends:
            return ends
    return None


def _first_instant_at(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first instant (in UTC) at which the clock in `zone` reads `day at` or later."""
    wall = datetime.combine(day, at)
    # fold=0 is the first occurrence of an ambiguous time, which is what we want.
    candidate = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(candidate, zone) == wall:
        return candidate
    # `wall` is in a gap. fold=0 mapped it past the gap and fold=1 before it (PEP 495), so
    # the transition lies between them; bisect on whole seconds (tzdata transitions are
    # whole seconds) for the first instant whose wall time is >= `wall`. The bracket is
    # at most the DST shift wide, so this takes a dozen steps and always terminates.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = math.floor(before.timestamp()), math.ceil(candidate.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _wall(datetime.fromtimestamp(mid, UTC), zone) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)
