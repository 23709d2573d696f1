import bisect
from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logic.quiet_hours import QuietHours, parse_quiet_hours, quiet_until

NY = "America/New_York"
MADRID = "Europe/Madrid"
LORD_HOWE = "Australia/Lord_Howe"  # DST shift of 30 minutes
SANTIAGO = "America/Santiago"  # southern hemisphere, transitions at midnight
NIGHT = QuietHours(time(22, 0), time(7, 0))


def _at(
    zone: str,
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int = 0,
    *,
    fold: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(zone), fold=fold)


def _local(instant: datetime, zone: str) -> datetime:
    return instant.astimezone(ZoneInfo(zone))


# --- ordinary days -------------------------------------------------------------------


def test_window_crossing_midnight() -> None:
    # Madrid in June: no transition anywhere near.
    assert quiet_until(_at(MADRID, 2024, 6, 15, 23, 30), NIGHT, MADRID) == _at(
        MADRID, 2024, 6, 16, 7, 0
    )
    assert quiet_until(_at(MADRID, 2024, 6, 15, 22, 0), NIGHT, MADRID) == _at(
        MADRID, 2024, 6, 16, 7, 0
    )
    assert quiet_until(_at(MADRID, 2024, 6, 16, 0, 0), NIGHT, MADRID) == _at(
        MADRID, 2024, 6, 16, 7, 0
    )
    assert quiet_until(_at(MADRID, 2024, 6, 15, 6, 59), NIGHT, MADRID) == _at(
        MADRID, 2024, 6, 15, 7, 0
    )
    # Half-open: the end minute is already loud, the minute before the start too.
    assert quiet_until(_at(MADRID, 2024, 6, 15, 7, 0), NIGHT, MADRID) is None
    assert quiet_until(_at(MADRID, 2024, 6, 15, 21, 59), NIGHT, MADRID) is None
    assert quiet_until(_at(MADRID, 2024, 6, 15, 12, 0), NIGHT, MADRID) is None


def test_window_within_one_day() -> None:
    siesta = QuietHours(time(13, 0), time(15, 0))
    assert not siesta.crosses_midnight
    assert quiet_until(_at(MADRID, 2024, 6, 15, 12, 59), siesta, MADRID) is None
    assert quiet_until(_at(MADRID, 2024, 6, 15, 13, 0), siesta, MADRID) == _at(
        MADRID, 2024, 6, 15, 15, 0
    )
    assert quiet_until(_at(MADRID, 2024, 6, 15, 14, 59), siesta, MADRID) == _at(
        MADRID, 2024, 6, 15, 15, 0
    )
    assert quiet_until(_at(MADRID, 2024, 6, 15, 15, 0), siesta, MADRID) is None
    assert quiet_until(_at(MADRID, 2024, 6, 15, 23, 0), siesta, MADRID) is None


def test_result_is_utc_whatever_zone_now_is_in() -> None:
    # 21:30 UTC is 23:30 in Madrid (CEST); `now` may come in any zone.
    for now in (
        datetime(2024, 6, 15, 21, 30, tzinfo=UTC),
        datetime(2024, 6, 15, 17, 30, tzinfo=timezone(timedelta(hours=-4))),
    ):
        result = quiet_until(now, NIGHT, MADRID)
        assert result == datetime(2024, 6, 16, 5, 0, tzinfo=UTC)
        assert result is not None and result.tzinfo is UTC


def test_empty_or_missing_window_is_never_quiet() -> None:
    empty = QuietHours(time(7, 0), time(7, 0))
    assert empty.is_empty
    for hour in range(24):
        assert quiet_until(_at(NY, 2024, 6, 15, hour, 0), empty, NY) is None
        assert quiet_until(_at(NY, 2024, 6, 15, hour, 0), None, NY) is None


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        quiet_until(datetime(2024, 6, 15, 23, 0), NIGHT, NY)


def test_quiet_hours_are_wall_clock_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        QuietHours(time(22, 0, tzinfo=UTC), time(7, 0))


# --- a whole night across a DST change ends at `end` local -----------------------------


@pytest.mark.parametrize(
    ("zone", "evening", "real_hours"),
    [
        (NY, (2024, 3, 9, 23, 0), 7),  # spring forward: an hour shorter
        (NY, (2024, 11, 2, 23, 0), 9),  # fall back: an hour longer
        (MADRID, (2024, 3, 30, 23, 0), 7),
        (MADRID, (2024, 10, 26, 23, 0), 9),
    ],
)
def test_night_across_a_dst_change_ends_at_seven_local(
    zone: str, evening: tuple[int, int, int, int, int], real_hours: int
) -> None:
    now = _at(zone, *evening)
    result = quiet_until(now, NIGHT, zone)
    assert result is not None and result.tzinfo is UTC
    local = _local(result, zone)
    assert (local.date(), local.time()) == (now.date() + timedelta(days=1), time(7, 0))
    # The offset at the end differs from the start's, so the real length is not 8 hours.
    assert local.utcoffset() != now.utcoffset()
    assert result - now == timedelta(hours=real_hours)


# --- spring forward: edges that do not exist ------------------------------------------


def test_end_in_the_spring_forward_gap_is_the_end_of_the_gap() -> None:
    # 2024-03-10 in New York: 02:00 EST jumps to 03:00 EDT; 02:30 never happens.
    quiet = QuietHours(time(22, 0), time(2, 30))
    expected = datetime(2024, 3, 10, 7, 0, tzinfo=UTC)  # 03:00 EDT
    for now in (_at(NY, 2024, 3, 9, 23, 0), _at(NY, 2024, 3, 10, 1, 59, 59)):
        assert quiet_until(now, quiet, NY) == expected
    assert _local(expected, NY).time() == time(3, 0)
    assert quiet_until(_at(NY, 2024, 3, 10, 3, 0), quiet, NY) is None


def test_end_in_the_gap_in_madrid_and_lord_howe() -> None:
    # Madrid 2024-03-31: 02:00 CET jumps to 03:00 CEST.
    quiet = QuietHours(time(22, 0), time(2, 30))
    result = quiet_until(_at(MADRID, 2024, 3, 31, 1, 0), quiet, MADRID)
    assert result == datetime(2024, 3, 31, 1, 0, tzinfo=UTC)
    assert _local(result, MADRID).time() == time(3, 0)
    # Lord Howe 2024-10-06: 02:00 +10:30 jumps to 02:30 +11:00, a 30-minute gap.
    quiet = QuietHours(time(22, 0), time(2, 15))
    result = quiet_until(_at(LORD_HOWE, 2024, 10, 6, 1, 50), quiet, LORD_HOWE)
    assert result == datetime(2024, 10, 5, 15, 30, tzinfo=UTC)
    assert _local(result, LORD_HOWE).time() == time(2, 30)


def test_end_in_a_midnight_gap() -> None:
    # Santiago 2024-09-08: midnight -04:00 jumps to 01:00 -03:00; 00:30 never happens.
    quiet = QuietHours(time(22, 0), time(0, 30))
    result = quiet_until(_at(SANTIAGO, 2024, 9, 7, 23, 0), quiet, SANTIAGO)
    assert result == datetime(2024, 9, 8, 4, 0, tzinfo=UTC)
    local = _local(result, SANTIAGO)
    assert (local.day, local.time()) == (8, time(1, 0))


def test_start_in_the_gap_starts_at_the_end_of_the_gap() -> None:
    quiet = QuietHours(time(2, 30), time(6, 0))
    assert quiet_until(_at(NY, 2024, 3, 10, 1, 59), quiet, NY) is None
    assert quiet_until(_at(NY, 2024, 3, 10, 3, 0), quiet, NY) == _at(NY, 2024, 3, 10, 6, 0)


def test_back_to_back_periods_meet_when_both_edges_fall_in_one_gap() -> None:
    # 02:30-02:00 leaves a 30-minute loud gap each night, except on 2024-03-10 in New York
    # where both 02:00 and 02:30 become 03:00 EDT: one period ends as the next begins.
    quiet = QuietHours(time(2, 30), time(2, 0))
    seam = datetime(2024, 3, 10, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert quiet_until(_at(NY, 2024, 3, 9, 12, 0), quiet, NY) == seam
    assert quiet_until(seam, quiet, NY) == datetime(2024, 3, 11, 6, 0, tzinfo=UTC)  # 02:00


# --- fall back: edges that happen twice -----------------------------------------------


def test_end_in_the_repeated_hour_is_its_first_occurrence() -> None:
    # 2024-11-03 in New York: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
    quiet = QuietHours(time(22, 0), time(1, 30))
    # Aware datetimes in different zones never compare equal when one of them is
    # ambiguous (PEP 495), so all expectations here are in UTC.
    first = datetime(2024, 11, 3, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert _local(first, NY).replace(tzinfo=None) == datetime(2024, 11, 3, 1, 30)
    assert quiet_until(_at(NY, 2024, 11, 2, 23, 0), quiet, NY) == first
    assert quiet_until(_at(NY, 2024, 11, 3, 1, 10, fold=0), quiet, NY) == first
    # Exactly nominal length (3.5 hours) and no second quiet spell when the clock
    # reads 01:10 again an hour later: one night, one quiet period.
    assert first - _at(NY, 2024, 11, 2, 22, 0) == timedelta(hours=3, minutes=30)  # EDT
    assert quiet_until(_at(NY, 2024, 11, 3, 1, 10, fold=1), quiet, NY) is None


def test_start_in_the_repeated_hour_is_its_first_occurrence() -> None:
    quiet = QuietHours(time(1, 30), time(6, 0))
    end = datetime(2024, 11, 3, 11, 0, tzinfo=UTC)  # 06:00 EST
    assert quiet_until(_at(NY, 2024, 11, 3, 1, 29, fold=0), quiet, NY) is None
    assert quiet_until(_at(NY, 2024, 11, 3, 1, 30, fold=0), quiet, NY) == end
    # The clock reads 01:10 again after the period started: it stays quiet, no flicker.
    assert quiet_until(_at(NY, 2024, 11, 3, 1, 10, fold=1), quiet, NY) == end


def test_fall_back_at_midnight_in_the_southern_hemisphere() -> None:
    # Santiago 2024-04-07: midnight -03:00 falls back to 23:00 -04:00 on the 6th.
    quiet = QuietHours(time(23, 30), time(6, 0))
    first = datetime(2024, 4, 7, 2, 30, tzinfo=UTC)  # the first 23:30, still -03:00
    assert _local(first, SANTIAGO).replace(tzinfo=None) == datetime(2024, 4, 6, 23, 30)
    end = quiet_until(first, quiet, SANTIAGO)
    assert end == datetime(2024, 4, 7, 10, 0, tzinfo=UTC)  # 06:00 -04:00
    # Still quiet when the clock reads 23:10 again on the 6th.
    assert quiet_until(_at(SANTIAGO, 2024, 4, 6, 23, 10, fold=1), quiet, SANTIAGO) == end
    assert end - first == timedelta(hours=7, minutes=30)


# --- parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22:00-07:00", QuietHours(time(22, 0), time(7, 0))),
        (" 9:05 - 17:30 ", QuietHours(time(9, 5), time(17, 30))),
        ("00:00-23:59", QuietHours(time(0, 0), time(23, 59))),
        ("07:00-07:00", QuietHours(time(7, 0), time(7, 0))),
    ],
)
def test_parse_quiet_hours(text: str, expected: QuietHours) -> None:
    assert parse_quiet_hours(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must look like"),
        ("22:00", "must look like"),
        ("22-07", "must look like"),
        ("22:00-07:00-08:00", "must look like"),
        ("10pm-7am", "must look like"),
        ("24:00-07:00", "not a time of day"),
        ("22:00-07:60", "not a time of day"),
    ],
)
def test_parse_quiet_hours_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_quiet_hours(text)


# --- properties -----------------------------------------------------------------------

ZONES = [
    "UTC",
    "Asia/Kolkata",  # +05:30, no DST
    NY,
    MADRID,
    LORD_HOWE,
    SANTIAGO,
    "Australia/Sydney",
]
_FIRST, _LAST = datetime(2020, 1, 1, tzinfo=UTC), datetime(2036, 1, 1, tzinfo=UTC)


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta | None:
    return instant.astimezone(zone).utcoffset()


def _transitions(name: str) -> list[datetime]:
    """Every UTC instant (to the second) where the zone's offset changes, 2020-2035."""
    zone = ZoneInfo(name)
    found: list[datetime] = []
    day = _FIRST
    while day < _LAST:
        # No zone here changes its offset twice within a week.
        nxt = day + timedelta(days=7)
        if _offset(day, zone) != _offset(nxt, zone):
            lo, hi = day, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if _offset(mid, zone) == _offset(lo, zone):
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        day = nxt
    return found


TRANSITIONS = {name: _transitions(name) for name in ZONES}
# Minutes that sit on or inside the transition hours of the zones above.
EDGE_MINUTES = [0, 30, 60, 90, 105, 120, 135, 150, 180, 1380, 1410]


def _near_transitions(name: str) -> st.SearchStrategy[datetime]:
    # Whole seconds: cheaper to draw than st.datetimes(), and edges are whole minutes anyway.
    uniform = st.integers(int(_FIRST.timestamp()), int(_LAST.timestamp())).map(
        lambda seconds: datetime.fromtimestamp(seconds, UTC)
    )
    if not TRANSITIONS[name]:
        return uniform
    # Uniform instants almost never land near a transition; aim half of them there.
    near = st.builds(
        lambda t, s: t + timedelta(seconds=s),
        st.sampled_from(TRANSITIONS[name]),
        st.integers(-30 * 3600, 30 * 3600),
    )
    return st.one_of(uniform, near)


# Built once: constructing strategies inside the composite dominated the run time.
_NOW_IN = {name: _near_transitions(name) for name in ZONES}
_MINUTES = st.one_of(st.integers(0, 24 * 60 - 1), st.sampled_from(EDGE_MINUTES))
_OFFSET_MINUTES = st.integers(-12 * 60, 14 * 60)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[str, datetime, QuietHours]:
    name = draw(st.sampled_from(ZONES))
    # `now` may arrive in any zone; shown in a fixed offset it is still the same instant.
    shown_in = timezone(timedelta(minutes=draw(_OFFSET_MINUTES)))
    now = draw(_NOW_IN[name]).astimezone(shown_in)
    start, end = draw(_MINUTES), draw(_MINUTES)
    quiet = QuietHours(time(start // 60, start % 60), time(end // 60, end % 60))
    return name, now, quiet


def _stable_around(name: str, now: datetime) -> bool:
    """No offset change within 26 hours of `now` either way."""
    changes = TRANSITIONS[name]
    lo = bisect.bisect_left(changes, now - timedelta(hours=26))
    return lo == len(changes) or changes[lo] > now + timedelta(hours=26)


def _in_wall_window(at: time, quiet: QuietHours) -> bool:
    if quiet.crosses_midnight:
        return at >= quiet.start or at < quiet.end
    return quiet.start <= at < quiet.end


PROPERTY_SETTINGS = settings(deadline=None, max_examples=200)


# One test for the properties that share a drawn case: drawing dominates the run time.
@PROPERTY_SETTINGS
@given(_cases())
def test_the_end_is_later_reads_end_locally_and_closes_the_period(
    case: tuple[str, datetime, QuietHours],
) -> None:
    name, now, quiet = case
    result = quiet_until(now, quiet, name)
    if result is None:
        return
    # Later than now, by at most a (nearly) full-day window plus the DST shift.
    assert result.tzinfo is UTC
    assert now < result <= now + timedelta(hours=25)

    # The local clock reads `end` then; if it cannot (`end` fell in a gap that day), the
    # result is the instant the clock jumped forward.
    zone = ZoneInfo(name)
    local = result.astimezone(zone)
    if local.time() != quiet.end:
        before = _offset(result - timedelta(seconds=1), zone)
        assert before is not None and local.utcoffset() is not None
        assert local.utcoffset() > before  # type: ignore[operator]

    # Every instant of one period reports the same end...
    assert quiet_until(result - timedelta(microseconds=1), quiet, name) == result
    assert quiet_until(now + (result - now) / 2, quiet, name) == result
    # ...and the end itself is loud, unless the next day's period starts that very instant.
    # That needs both edges in one spring-forward gap, so they are at most the shift apart
    # on the wall clock (e.g. 02:30-02:00 on the day 02:00 jumps to 03:00).
    again = quiet_until(result, quiet, name)
    if again is not None:
        assert again > result
        start = quiet.start.hour * 60 + quiet.start.minute
        end = quiet.end.hour * 60 + quiet.end.minute
        assert (start - end) % (24 * 60) <= 60


@PROPERTY_SETTINGS
@given(_cases())
def test_away_from_transitions_the_wall_clock_decides(
    case: tuple[str, datetime, QuietHours],
) -> None:
    name, now, quiet = case
    if not _stable_around(name, now):
        return
    local = now.astimezone(ZoneInfo(name))
    result = quiet_until(now, quiet, name)
    if quiet.is_empty or not _in_wall_window(local.time(), quiet):
        assert result is None
        return
    end_day = local.date() if local.time() < quiet.end else local.date() + timedelta(days=1)
    expected = datetime.combine(end_day, quiet.end, tzinfo=local.tzinfo)
    assert result == expected
