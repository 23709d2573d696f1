"""Provider pacing (logic/pacing.py): a worker's share of a provider's global rate, and the
token bucket's rate changes (a fake clock whose sleeps end only when the test moves it)."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logic.pacing import Pacer, group_share, worker_rate


# -- the share ---------------------------------------------------------------------------
def test_a_worker_paces_its_partitions_part_of_the_groups_budget() -> None:
    assert worker_rate(1_000.0, 1.0, 2, 6) == pytest.approx(1_000.0 / 3)
    assert worker_rate(1_000.0, 1.0, 6, 6) == 1_000.0  # the only worker: all of it
    assert worker_rate(1_000.0, 0.75, 3, 6) == pytest.approx(375.0)
    # Owning none: 0, meaning no send at all (the pacer pauses), not a small floor.
    assert worker_rate(1_000.0, 1.0, 0, 6) == 0.0
    assert worker_rate(1_000.0, 0.0, 0, 0) == 0.0  # a group serving no lane


def test_a_share_that_cannot_be_is_refused() -> None:
    with pytest.raises(ValueError):
        worker_rate(1_000.0, 1.0, 7, 6)  # more partitions than the group has
    with pytest.raises(ValueError):
        worker_rate(1_000.0, 1.0, -1, 6)
    with pytest.raises(ValueError):
        worker_rate(1_000.0, 1.5, 1, 6)
    with pytest.raises(ValueError):
        worker_rate(-1.0, 1.0, 1, 6)


def test_lane_split_groups_divide_the_budget_by_lanes_unless_told() -> None:
    assert group_share(4, 4) == 1.0
    assert group_share(1, 4) == 0.25  # critical on its own group
    assert group_share(3, 4) == 0.75  # high, social, bulk
    assert group_share(0, 4) == 0.0  # a fan-out-only worker: no provider sink
    assert group_share(1, 4, override=0.1) == 0.1  # CLARION_PACE_GROUP_SHARE
    for bad in (0.0, 1.01, -0.5):
        with pytest.raises(ValueError):
            group_share(1, 4, override=bad)
    with pytest.raises(ValueError):
        group_share(5, 4)


@settings(max_examples=300, deadline=None)
@given(
    partitions=st.integers(1, 64),
    lanes=st.integers(1, 4),
    workers=st.integers(1, 12),
    seed=st.randoms(use_true_random=False),
    global_per_s=st.floats(0.1, 1e7),
)
def test_shares_over_any_assignment_add_up_to_the_budget(
    partitions: int, lanes: int, workers: int, seed: object, global_per_s: float
) -> None:
    """Whatever the assignor does with the group's partitions (every lane's delivery topic of
    the channel; uneven, some workers with none), the workers' rates add up to the group's
    budget, none is above it, and a worker that owns none paces 0."""
    import random

    rnd: random.Random = seed  # type: ignore[assignment]
    total = partitions * lanes
    owner = [rnd.randrange(workers) for _ in range(total)]
    owned = [owner.count(w) for w in range(workers)]
    share = group_share(lanes, 4)
    rates = [worker_rate(global_per_s, share, n, total) for n in owned]
    budget = global_per_s * share
    assert math.fsum(rates) == pytest.approx(budget, rel=1e-9)
    assert all(0.0 <= r <= budget * (1 + 1e-12) for r in rates)
    assert all(r == 0.0 for r, n in zip(rates, owned, strict=True) if n == 0)


@settings(max_examples=200, deadline=None)
@given(
    split=st.lists(st.integers(0, 3), min_size=4, max_size=4),
    partitions=st.integers(1, 32),
    seed=st.randoms(use_true_random=False),
)
def test_lane_split_groups_together_stay_within_the_budget(
    split: list[int], partitions: int, seed: object
) -> None:
    """Each lane served by exactly one of up to four groups (CLARION_LANES, one app id each),
    each group assigning its partitions to its own workers: with the default shares the whole
    deployment paces exactly the provider's global rate."""
    import random

    rnd: random.Random = seed  # type: ignore[assignment]
    rates: list[float] = []
    for group in set(split):
        lanes = split.count(group)
        total = partitions * lanes
        workers = rnd.randint(1, 5)
        owner = [rnd.randrange(workers) for _ in range(total)]
        share = group_share(lanes, 4)
        rates += [worker_rate(600.0, share, owner.count(w), total) for w in range(workers)]
    assert math.fsum(rates) == pytest.approx(600.0, rel=1e-9)


# -- the bucket's rate changes --------------------------------------------------------------
class FakeTime:
    """A clock that moves only when told; a sleep ends once the clock has passed its end."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleeps: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleeps.append((self.now + seconds, done))
        await done

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for end, done in self._sleeps:
            if end <= self.now + 1e-12 and not done.done():
                done.set_result(None)
        self._sleeps = [(e, d) for e, d in self._sleeps if not d.done()]
        await settle()

    @property
    def sleeping(self) -> int:
        return sum(1 for _e, d in self._sleeps if not d.done())


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def pacer_at(t: FakeTime, rate: float, burst: float | None = None) -> Pacer:
    return Pacer(rate_per_s=rate, burst=burst, clock=t.clock, sleep=t.sleep)


async def test_a_waiter_re_evaluates_its_wait_when_the_rate_goes_up() -> None:
    t = FakeTime()
    pacer = pacer_at(t, rate=1.0)  # burst 1: one send now, the next in 1 s
    await pacer.acquire()
    waiter = asyncio.ensure_future(pacer.acquire())
    await t.advance(0.005)
    assert not waiter.done()
    pacer.set_rate(100.0)  # a rebalance gave this worker more partitions
    await settle()
    # 0.005 s earned at 1/s (0.005 tokens), the rest at 100/s: 0.00995 s more, not 0.995 s.
    await t.advance(0.0099)
    assert not waiter.done()
    await t.advance(0.0001)
    assert waiter.done()
    assert t.sleeping == 0  # the sleep at the old rate was ended, not left behind


async def test_a_paused_pacer_holds_every_send_until_it_has_a_rate_again() -> None:
    t = FakeTime()
    pacer = pacer_at(t, rate=10.0, burst=5)
    pacer.set_rate(0.0)  # revoked: this worker owns none of the provider's partitions
    assert pacer.paused
    waiter = asyncio.ensure_future(pacer.acquire())
    await t.advance(3600.0)
    # Not even the burst it had before the pause goes out.
    assert not waiter.done()
    assert t.sleeping == 0  # waiting for a rate, not polling the clock
    pacer.set_rate(10.0)  # assigned again: it starts with an empty bucket
    await settle()
    assert not waiter.done()
    await t.advance(0.1)
    assert waiter.done()


async def test_the_tokens_clamp_to_the_burst_of_a_lower_rate() -> None:
    t = FakeTime()
    pacer = pacer_at(t, rate=100.0)  # default burst: 1/10 s worth = 10
    assert pacer.burst == 10.0
    pacer.set_rate(20.0)
    assert pacer.burst == 2.0  # the default burst follows the rate
    for _ in range(2):
        await pacer.acquire()  # the clamped bucket
    third = asyncio.ensure_future(pacer.acquire())
    await settle()
    assert not third.done()
    await t.advance(1 / 20)
    assert third.done()
    # An explicit burst stays (at least one send).
    fixed = pacer_at(t, rate=100.0, burst=4)
    fixed.set_rate(1.0)
    assert fixed.burst == 4.0


async def test_what_was_earned_before_a_change_counts_at_the_old_rate() -> None:
    t = FakeTime()
    pacer = pacer_at(t, rate=10.0, burst=1)
    await pacer.acquire()  # the bucket is empty now
    await t.advance(0.05)  # half a token at 10/s
    pacer.set_rate(100.0)
    waiter = asyncio.ensure_future(pacer.acquire())
    await settle()
    assert not waiter.done()
    await t.advance(0.005)  # the other half at 100/s
    assert waiter.done()


async def test_over_rate_changes_the_sends_follow_the_rate_in_force() -> None:
    """500 sends at 100/s, then 50/s, then 200/s, with callers queued all along: the clock
    at the end is what the rates in force allow, to the burst."""
    t = FakeTime()
    pacer = pacer_at(t, rate=100.0, burst=1)
    await pacer.acquire()
    sent = 0

    async def caller() -> None:
        nonlocal sent
        await pacer.acquire()
        sent += 1

    tasks = [asyncio.ensure_future(caller()) for _ in range(700)]
    await settle()
    for _ in range(100):  # 1 s at 100/s
        await t.advance(0.01)
    assert sent == 100
    pacer.set_rate(50.0)
    for _ in range(100):  # 2 s at 50/s
        await t.advance(0.02)
    assert sent == 200
    pacer.set_rate(0.0)
    await t.advance(10.0)
    assert sent == 200  # paused
    pacer.set_rate(200.0)
    for _ in range(500):  # 2.5 s at 200/s
        await t.advance(0.005)
    assert sent == 700
    await asyncio.gather(*tasks)


def test_a_rate_that_cannot_be_is_refused() -> None:
    pacer = Pacer(rate_per_s=10.0)
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            pacer.set_rate(bad)
    with pytest.raises(ValueError):
        Pacer(rate_per_s=0.0)  # a configured rate is positive; 0 comes only from set_rate
