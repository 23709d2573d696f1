"""logic/coalesce.py: grouping by key, max_batch, slots, error fan-out, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logic.coalesce import Coalescer


class Recorder:
    """A batch function that records its calls and answers (key, item) per item."""

    def __init__(self, delay_s: float = 0.0, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.running = 0
        self.most_running = 0

    async def __call__(self, key: str, items: list[int]) -> list[tuple[str, int]]:
        self.calls.append((key, list(items)))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay_s)
            if key == self.fail_on:
                raise ConnectionError(f"batch {key} failed")
            return [(key, i) for i in items]
        finally:
            self.running -= 1


async def settle() -> None:
    # A batch's callers resume as soon as their results are set; its task (and slot) ends
    # on the next step.
    for _ in range(2):
        await asyncio.sleep(0)


def parity(i: int) -> str:
    return "even" if i % 2 == 0 else "odd"


async def test_items_ready_together_are_one_batch_per_key_in_order() -> None:
    batch = Recorder()
    c: Coalescer[int, str, tuple[str, int]] = Coalescer(
        batch, key=parity, max_batch=100, max_in_flight=4
    )
    results = await asyncio.gather(*(c.submit(i) for i in range(10)))
    assert results == [(parity(i), i) for i in range(10)]
    assert sorted(batch.calls) == [("even", [0, 2, 4, 6, 8]), ("odd", [1, 3, 5, 7, 9])]
    await settle()
    assert (c.batches, c.items, c.in_flight, c.waiting) == (2, 10, 0, 0)


async def test_a_full_key_is_split_at_max_batch() -> None:
    batch = Recorder()
    c: Coalescer[int, str, tuple[str, int]] = Coalescer(
        batch, key=lambda i: "k", max_batch=1000, max_in_flight=4
    )
    results = await asyncio.gather(*(c.submit(i) for i in range(2500)))
    assert results == [("k", i) for i in range(2500)]
    assert [len(items) for _, items in batch.calls] == [1000, 1000, 500]
    assert [i for _, items in batch.calls for i in items] == list(range(2500))


async def test_nothing_waits_to_fill_a_batch() -> None:
    # One item alone goes at once: no timer, no minimum size.
    batch = Recorder()
    c: Coalescer[int, str, tuple[str, int]] = Coalescer(
        batch, key=parity, max_batch=1000, max_in_flight=1
    )
    assert await asyncio.wait_for(c.submit(7), timeout=0.5) == ("odd", 7)
    assert batch.calls == [("odd", [7])]


async def test_a_lingering_key_waits_to_fill_its_batch_up_to_its_linger() -> None:
    """A campaign key (even) waits up to 0.2 s for a full batch; the other key goes at once."""
    batch = Recorder()
    c: Coalescer[int, str, tuple[str, int]] = Coalescer(
        batch, key=parity, max_batch=4, max_in_flight=4,
        linger=lambda key: 0.2 if key == "even" else 0.0,
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = asyncio.ensure_future(c.submit(0))
    odd = asyncio.ensure_future(c.submit(1))
    assert await asyncio.wait_for(odd, timeout=0.1) == ("odd", 1)  # not held
    await asyncio.sleep(0.05)
    assert not first.done()  # waiting for more of its key
    more = [asyncio.ensure_future(c.submit(i)) for i in (2, 4, 6)]  # fills the batch of 4
    await asyncio.gather(first, *more)
    assert loop.time() - started < 0.2  # a full batch goes without waiting out the linger
    assert ("even", [0, 2, 4, 6]) in batch.calls
    lone = asyncio.ensure_future(c.submit(8))
    await asyncio.sleep(0.1)
    assert not lone.done()
    assert await asyncio.wait_for(lone, timeout=0.5) == ("even", 8)  # the linger ran out
    assert batch.calls[-1] == ("even", [8])


async def test_items_arriving_while_a_key_is_on_the_wire_go_in_its_next_batch() -> None:
    batch = Recorder(delay_s=0.05)
    c: Coalescer[int, str, tuple[str, int]] = Coalescer(
        batch, key=lambda i: "k", max_batch=1000, max_in_flight=16, max_in_flight_per_key=1
    )
    first = asyncio.ensure_future(c.submit(0))
    await asyncio.sleep(0.01)  # batch [0] is running now
    later = []
    for wave in range(5):  # arriving at different moments, all before [0] is answered
        later += [asyncio.ensure_future(c.submit(100 * wave + i)) for i in range(1, 41)]
        await asyncio.sleep(0.002)
    await asyncio.gather(first, *later)
    # One request on the wire for the key: everything that arrived meanwhile is one batch.
    assert [len(items) for _, items in batch.calls] == [1, len(later)]
    assert batch.most_running == 1


async def test_batch_calls_in_flight_are_bounded() -> None:
    batch = Recorder(delay_s=0.02)
    c: Coalescer[int, int, tuple[str, int]] = Coalescer(
        lambda k, items: batch(str(k), items), key=lambda i: i, max_batch=10, max_in_flight=3
    )
    results = await asyncio.gather(*(c.submit(i) for i in range(20)))
    assert results == [(str(i), i) for i in range(20)]
    assert batch.most_running == 3
    assert len(batch.calls) == 20


async def test_a_failing_batch_fails_only_its_own_items() -> None:
    batch = Recorder(fail_on="odd")
    c: Coalescer[int, str, tuple[str, int]] = Coalescer(
        batch, key=parity, max_batch=100, max_in_flight=4
    )
    results = await asyncio.gather(*(c.submit(i) for i in range(6)), return_exceptions=True)
    assert [r for r in results if isinstance(r, tuple)] == [("even", 0), ("even", 2), ("even", 4)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 3 and all(isinstance(e, ConnectionError) for e in errors)
    # And the coalescer goes on: slots were given back.
    assert await c.submit(8) == ("even", 8)
    await settle()
    assert c.in_flight == 0


async def test_a_batch_answering_the_wrong_number_of_results_fails_its_items() -> None:
    async def short(key: str, items: list[int]) -> Sequence[int]:
        return items[:-1]

    c: Coalescer[int, str, int] = Coalescer(short, key=lambda i: "k", max_batch=10, max_in_flight=1)
    results = await asyncio.gather(*(c.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)


async def test_a_cancelled_caller_leaves_the_queue_and_the_others_still_get_theirs() -> None:
    batch = Recorder(delay_s=0.05)
    c: Coalescer[int, str, tuple[str, int]] = Coalescer(
        batch, key=lambda i: "k", max_batch=100, max_in_flight=1, max_in_flight_per_key=1
    )
    running = asyncio.ensure_future(c.submit(0))
    await asyncio.sleep(0.01)
    queued = [asyncio.ensure_future(c.submit(i)) for i in (1, 2, 3)]
    await asyncio.sleep(0)
    queued[1].cancel()  # item 2, still waiting
    running.cancel()  # item 0, on the wire: its batch goes on
    results = await asyncio.gather(queued[0], queued[2])
    assert results == [("k", 1), ("k", 3)]
    assert batch.calls == [("k", [0]), ("k", [1, 3])]
    await settle()
    assert c.waiting == 0 and c.in_flight == 0


async def test_aclose_cancels_waiting_and_running_items() -> None:
    batch = Recorder(delay_s=10)
    c: Coalescer[int, str, tuple[str, int]] = Coalescer(
        batch, key=lambda i: "k", max_batch=1, max_in_flight=1
    )
    tasks = [asyncio.ensure_future(c.submit(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    await c.aclose()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    with pytest.raises(RuntimeError):
        await c.submit(9)


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=120),
    max_batch=st.integers(min_value=1, max_value=20),
    max_in_flight=st.integers(min_value=1, max_value=5),
    per_key=st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
    waves=st.integers(min_value=1, max_value=4),
)
def test_every_item_is_answered_once_with_its_own_result(
    keys: list[int], max_batch: int, max_in_flight: int, per_key: int | None, waves: int
) -> None:
    async def run() -> None:
        calls: list[tuple[int, list[int]]] = []

        async def batch(key: int, items: list[int]) -> list[int]:
            calls.append((key, list(items)))
            await asyncio.sleep(0)
            return [i * 10 for i in items]

        c: Coalescer[int, int, int] = Coalescer(
            batch,
            key=lambda i: keys[i],
            max_batch=max_batch,
            max_in_flight=max_in_flight,
            max_in_flight_per_key=per_key,
        )
        # Items arrive in a few waves, so some wait behind running batches.
        tasks = []
        for w in range(waves):
            tasks += [
                asyncio.ensure_future(c.submit(i)) for i in range(len(keys)) if i % waves == w
            ]
            await asyncio.sleep(0)
        results = await asyncio.gather(*tasks)
        items = [i for w in range(waves) for i in range(len(keys)) if i % waves == w]
        assert results == [i * 10 for i in items]
        carried = sorted(i for _, batch_items in calls for i in batch_items)
        assert carried == list(range(len(keys)))  # none lost, none twice
        for key, batch_items in calls:
            assert 1 <= len(batch_items) <= max_batch
            assert all(keys[i] == key for i in batch_items)
            assert batch_items == sorted(batch_items, key=items.index)  # arrival order
        await settle()
        assert c.waiting == 0 and c.in_flight == 0

    asyncio.run(run())
