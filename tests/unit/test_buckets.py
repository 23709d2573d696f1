import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logic.buckets import (
    BucketLimit,
    BucketState,
    seconds_until_available,
    take,
)

PER_MINUTE_BURST_3 = BucketLimit(per_hour=60, burst=3)
T0 = 1_700_000_000.0  # a realistic unix time, where float resolution is ~0.2 us


def test_burst_is_allowed_then_refused() -> None:
    state = None
    for _ in range(3):
        allowed, state = take(state, PER_MINUTE_BURST_3, T0)
        assert allowed
    allowed, refused = take(state, PER_MINUTE_BURST_3, T0)
    assert not allowed
    assert refused == state
    assert seconds_until_available(refused, PER_MINUTE_BURST_3, T0) == pytest.approx(60)


def test_tokens_come_back_with_time() -> None:
    empty = BucketState(tokens=0.0, updated_at=T0)
    assert not take(empty, PER_MINUTE_BURST_3, T0 + 59)[0]
    allowed, after = take(empty, PER_MINUTE_BURST_3, T0 + 60)
    assert allowed
    assert after == BucketState(tokens=0.0, updated_at=T0 + 60)


def test_a_refused_take_still_refills() -> None:
    allowed, state = take(BucketState(0.0, T0), PER_MINUTE_BURST_3, T0 + 30)
    assert not allowed
    assert state == BucketState(0.5, T0 + 30)
    # The half token is kept: only another 30 seconds are needed, not 60.
    assert seconds_until_available(state, PER_MINUTE_BURST_3, T0 + 30) == pytest.approx(30)


def test_never_more_than_burst() -> None:
    allowed, state = take(BucketState(0.0, T0), PER_MINUTE_BURST_3, T0 + 10 * 3600)
    assert allowed and state.tokens == 2.0
    # A state written under a larger limit is cut down to this one.
    assert take(BucketState(50.0, T0), PER_MINUTE_BURST_3, T0)[1].tokens == 2.0


def test_clock_going_backwards_grants_nothing() -> None:
    empty = BucketState(tokens=0.0, updated_at=T0)
    allowed, state = take(empty, PER_MINUTE_BURST_3, T0 - 600)
    assert not allowed
    # No negative refill, and the later timestamp is kept so the skew is not paid twice.
    assert state == empty
    # Refill resumes only once the clock passes T0 again: 600 s of skew + 60 s for a token.
    assert seconds_until_available(state, PER_MINUTE_BURST_3, T0 - 600) == pytest.approx(660)
    assert not take(state, PER_MINUTE_BURST_3, T0 + 59)[0]
    assert take(state, PER_MINUTE_BURST_3, T0 + 60)[0]


def test_a_cost_above_burst_is_never_available() -> None:
    assert not take(None, PER_MINUTE_BURST_3, T0, cost=4)[0]
    assert seconds_until_available(None, PER_MINUTE_BURST_3, T0, cost=4) == math.inf
    assert seconds_until_available(None, PER_MINUTE_BURST_3, T0, cost=3) == 0.0


def test_bad_limits_and_costs_are_refused() -> None:
    for per_hour, burst in ((0, 3), (-1, 3), (math.nan, 3), (60, 0.5), (60, math.inf)):
        with pytest.raises(ValueError):
            BucketLimit(per_hour=per_hour, burst=burst)
    with pytest.raises(ValueError, match="cost"):
        take(None, PER_MINUTE_BURST_3, T0, cost=-1)


# --- properties -----------------------------------------------------------------------

PROPERTY_SETTINGS = settings(deadline=None, max_examples=200)
EPSILON = 1e-6  # float rounding over a few dozen refills

limits = st.builds(
    BucketLimit,
    per_hour=st.floats(0.1, 100_000),
    burst=st.floats(1, 100),
)
costs = st.one_of(st.just(1.0), st.floats(0, 5))
starts = st.floats(0, 2_000_000_000)


def _run(
    limit: BucketLimit, start: float, steps: list[tuple[float, float]]
) -> tuple[list[float], list[float], list[BucketState]]:
    """Take at each step; return the clocks, the running total of granted cost (with a
    leading 0, so a window's total is a difference) and the states."""
    now, state = start, None
    clocks: list[float] = []
    granted = [0.0]
    states: list[BucketState] = []
    for dt, cost in steps:
        now += dt
        allowed, state = take(state, limit, now, cost)
        clocks.append(now)
        granted.append(granted[-1] + (cost if allowed else 0.0))
        states.append(state)
    return clocks, granted, states


@PROPERTY_SETTINGS
@given(limits, starts, st.lists(st.tuples(st.floats(0, 7200), costs), max_size=30))
def test_never_grants_more_than_burst_plus_refill(
    limit: BucketLimit, start: float, steps: list[tuple[float, float]]
) -> None:
    clocks, granted, states = _run(limit, start, steps)
    for state in states:
        assert 0 <= state.tokens <= limit.burst
    # Holds for every window, not only from the start: a full bucket plus what refilled.
    for i in range(len(steps)):
        for j in range(i, len(steps)):
            span = clocks[j] - clocks[i]
            budget = limit.burst + limit.per_hour * span / 3600
            assert granted[j + 1] - granted[i] <= budget + EPSILON * (1 + budget)


@PROPERTY_SETTINGS
@given(limits, starts, st.lists(st.tuples(st.floats(-7200, 7200), costs), max_size=30))
def test_a_clock_that_jumps_around_grants_no_more_than_its_highest_reading(
    limit: BucketLimit, start: float, steps: list[tuple[float, float]]
) -> None:
    clocks, granted, states = _run(limit, start, steps)
    highest = [max(clocks[: k + 1]) for k in range(len(clocks))]
    for state, seen in zip(states, highest, strict=True):
        assert 0 <= state.tokens <= limit.burst
        assert state.updated_at == seen
    for i in range(len(steps)):
        for j in range(i, len(steps)):
            budget = limit.burst + limit.per_hour * (highest[j] - highest[i]) / 3600
            assert granted[j + 1] - granted[i] <= budget + EPSILON * (1 + budget)


@PROPERTY_SETTINGS
@given(
    limits,
    st.one_of(st.none(), st.tuples(st.floats(0, 1.5), starts)),
    st.floats(-7200, 7200),
    costs,
)
def test_seconds_until_available_matches_take(
    limit: BucketLimit,
    raw: tuple[float, float] | None,
    dt: float,
    cost: float,
) -> None:
    # Tokens up to 1.5 x burst: states written under a larger, since lowered, limit.
    state = None if raw is None else BucketState(raw[0] * limit.burst, raw[1])
    now = (raw[1] if raw is not None else 1_700_000_000.0) + dt
    wait = seconds_until_available(state, limit, now, cost)
    allowed, _ = take(state, limit, now, cost)
    assert (wait == 0) == allowed
    if cost > limit.burst:
        assert wait == math.inf
    elif wait > 0:
        assert take(state, limit, now + wait, cost)[0]
        # ...and the wait is not padded: a millisecond earlier is still too early.
        if wait > 1e-3:
            assert not take(state, limit, now + wait - 1e-3, cost)[0]
