"""Claims on deliveries in flight (logic/claims.py) and which lane-split group owns a
control record (logic/ownership.py)."""

from __future__ import annotations

import asyncio

import pytest

from logic.claims import Claims, copy_reason
from logic.ownership import HOME_LANE, owns_lane, owns_laneless, serves_every_lane
from schemas.common import Lane


async def _deliver(claims: Claims[str, str], key: str, sends: list[str], outcome: str) -> str:
    """A sink's use of a claim: the holder 'sends', a copy reports the first's outcome."""
    first = await claims.claim(key)
    if first is not None:
        return f"skipped:{first}"
    result: str | None = None
    try:
        await asyncio.sleep(0.01)  # the provider round trip: copies arrive meanwhile
        sends.append(key)
        result = outcome
        return outcome
    finally:
        claims.release(key, result)


async def test_copies_in_flight_wait_for_the_first_and_do_not_send() -> None:
    claims: Claims[str, str] = Claims()
    sends: list[str] = []
    results = await asyncio.gather(
        *(_deliver(claims, f"d{i % 10}", sends, "sent") for i in range(30))
    )
    assert sorted(sends) == [f"d{i}" for i in range(10)]  # one send per id
    assert results.count("sent") == 10
    assert results.count("skipped:sent") == 20
    assert len(claims) == 0  # every claim released


async def test_the_first_outcome_reaches_every_copy_whatever_it_was() -> None:
    claims: Claims[str, str] = Claims()
    sends: list[str] = []
    results = await asyncio.gather(*(_deliver(claims, "d", sends, "failed") for _ in range(3)))
    assert sends == ["d"]
    assert sorted(results) == ["failed", "skipped:failed", "skipped:failed"]


async def test_a_holder_without_an_outcome_hands_the_claim_to_one_waiter() -> None:
    claims: Claims[str, str] = Claims()
    assert await claims.claim("d") is None
    waiters = [asyncio.ensure_future(claims.claim("d")) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    claims.release("d", None)  # the holder's work raised: no outcome
    await asyncio.wait(waiters, timeout=1, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.sleep(0.01)  # time for a second (wrong) taker, if there were one
    # Exactly one waiter now holds it; the other waits for that one's outcome.
    assert [w.done() for w in waiters].count(True) == 1
    holder = next(w for w in waiters if w.done())
    assert holder.result() is None
    claims.release("d", "sent")
    other = next(w for w in waiters if w is not holder)
    assert await other == "sent"


async def test_a_cancelled_waiter_leaves_the_claim_to_the_others() -> None:
    claims: Claims[str, str] = Claims()
    assert await claims.claim("d") is None
    cancelled = asyncio.ensure_future(claims.claim("d"))
    waiting = asyncio.ensure_future(claims.claim("d"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    claims.release("d", "sent")
    assert await waiting == "sent"
    with pytest.raises(asyncio.CancelledError):
        await cancelled


async def test_a_released_key_is_free_again() -> None:
    claims: Claims[str, str] = Claims()
    assert await claims.claim("d") is None
    claims.release("d", "retrying")
    assert "d" not in claims
    assert await claims.claim("d") is None  # the republished retry sends


def test_copy_reasons() -> None:
    assert copy_reason("sent") == "already_sent"
    assert copy_reason("retrying") == "duplicate_of:retrying"
    assert copy_reason("failed") == "duplicate_of:failed"


SPLIT = (frozenset({Lane.CRITICAL}), frozenset({Lane.HIGH, Lane.SOCIAL, Lane.BULK}))
THREE = (
    frozenset({Lane.CRITICAL}),
    frozenset({Lane.HIGH, Lane.SOCIAL}),
    frozenset({Lane.BULK}),
    frozenset[Lane](),  # a fan-out-only group (CLARION_LANES=none)
)


@pytest.mark.parametrize("groups", [SPLIT, THREE, (frozenset(Lane),)])
def test_exactly_one_group_owns_each_lane_and_the_laneless_records(
    groups: tuple[frozenset[Lane], ...],
) -> None:
    for lane in Lane:
        assert sum(owns_lane(g, lane) for g in groups) == 1
    assert sum(owns_laneless(g) for g in groups) == 1
    owner = next(g for g in groups if owns_laneless(g))
    assert HOME_LANE in owner


def test_only_a_group_with_every_lane_sees_the_whole_state() -> None:
    assert serves_every_lane(frozenset(Lane))
    assert not any(serves_every_lane(g) for g in SPLIT)
