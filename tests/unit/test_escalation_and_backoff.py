import asyncio
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logic.backoff import RetryPolicy, retry_delay
from logic.escalation import split_for_escalation
from logic.pacing import Pacer
from schemas.common import Category, Channel, Lane
from schemas.notifications import Delivery, Target

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def delivery(channel: Channel, address: str = "x") -> Delivery:
    return Delivery(
        delivery_id=f"{channel.value}-{address}",
        notification_id="n1",
        recipient_id="u1",
        category=Category.SECURITY_ALERT,
        lane=Lane.CRITICAL,
        channel=channel,
        target=Target(address=address),
        title="t",
        body="b",
        occurred_at=NOW,
        created_at=NOW,
    )


LADDER = (Channel.PUSH, Channel.SMS, Channel.EMAIL)


def test_first_ladder_channel_goes_with_the_unladdered_ones() -> None:
    ds = [
        delivery(Channel.IN_APP),
        delivery(Channel.PUSH, "a"),
        delivery(Channel.PUSH, "b"),
        delivery(Channel.SMS),
        delivery(Channel.EMAIL),
    ]
    now, steps = split_for_escalation(ds, LADDER)
    assert [d.delivery_id for d in now] == ["in_app-x", "push-a", "push-b"]
    assert [[d.channel for d in step] for step in steps] == [[Channel.SMS], [Channel.EMAIL]]


def test_missing_ladder_channels_are_skipped() -> None:
    now, steps = split_for_escalation([delivery(Channel.IN_APP), delivery(Channel.EMAIL)], LADDER)
    assert [d.channel for d in now] == [Channel.IN_APP, Channel.EMAIL]
    assert steps == []
    now, steps = split_for_escalation([delivery(Channel.SMS), delivery(Channel.EMAIL)], LADDER)
    assert [d.channel for d in now] == [Channel.SMS]
    assert [[d.channel for d in s] for s in steps] == [[Channel.EMAIL]]


def test_no_ladder_sends_everything_now() -> None:
    ds = [delivery(Channel.PUSH), delivery(Channel.SMS)]
    assert split_for_escalation(ds, ()) == (ds, [])


@given(
    attempt=st.integers(0, 20),
    retry_after=st.none() | st.floats(0, 3600),
    seed=st.integers(0, 2**32),
)
def test_backoff_bounds(attempt: int, retry_after: float | None, seed: int) -> None:
    policy = RetryPolicy(max_attempts=8, base_s=1.0, cap_s=60.0)
    delay = retry_delay(policy, attempt, retry_after, random.Random(seed))
    if attempt >= 7:
        assert delay is None
        return
    assert delay is not None
    ceiling = min(60.0, 2.0**attempt)
    assert ceiling / 2 <= delay <= max(ceiling, retry_after or 0)
    if retry_after is not None:
        assert delay >= retry_after


def test_backoff_grows_on_average() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=1.0, cap_s=60.0)
    rng = random.Random(1)
    means = [
        sum(retry_delay(policy, a, None, rng) or 0 for _ in range(2000)) / 2000 for a in range(6)
    ]
    assert means == sorted(means)
    assert means[0] == pytest.approx(0.75, abs=0.05)
    assert means[5] == pytest.approx(24.0, abs=1.0)


def test_default_policy_outlasts_a_six_minute_outage_whatever_the_jitter() -> None:
    policy = RetryPolicy()
    shortest = [retry_delay(policy, a, None, random.Random(0)) for a in range(policy.max_attempts)]
    waits = [min(policy.cap_s, 2.0**a) / 2 for a in range(policy.max_attempts - 1)]
    assert shortest[-1] is None
    assert all(d is not None and d >= w for d, w in zip(shortest, waits, strict=False))
    assert sum(waits) > 360


async def test_pacer_holds_the_rate_with_a_fake_clock() -> None:
    t = [0.0]

    async def sleep(s: float) -> None:
        t[0] += s
        await asyncio.sleep(0)

    pacer = Pacer(rate_per_s=100, burst=10, clock=lambda: t[0], sleep=sleep)
    for _ in range(510):
        await pacer.acquire()
    # 10 from the initial burst, then 100 per second: 500 more take 5 s.
    assert t[0] == pytest.approx(5.0, rel=0.01)


async def test_pacer_serves_concurrent_callers_at_the_rate() -> None:
    pacer = Pacer(rate_per_s=200, burst=1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(*(pacer.acquire() for _ in range(41)))
    assert loop.time() - start >= 0.19
