import asyncio
import random

from logic.ackwindow import AckWindow, KeyedChain


async def test_acks_follow_offset_order_per_partition_whatever_order_work_ends() -> None:
    acked: list[tuple[int, int]] = []
    window: AckWindow[tuple[int, int]] = AckWindow(
        limit=8, ack=acked.append, partition_of=lambda r: r[0]
    )
    rng = random.Random(7)
    records = [(p, o) for o in range(50) for p in range(3)]

    def work(delay: float):  # type: ignore[no-untyped-def]
        async def run() -> None:
            await asyncio.sleep(delay)

        return run

    for record in records:
        await window.submit(record, work(rng.random() / 100))
    await window.drain()
    assert sorted(acked) == sorted(records)
    for p in range(3):
        assert [o for q, o in acked if q == p] == list(range(50))


async def test_unfinished_work_holds_back_later_acks_and_concurrency_is_bounded() -> None:
    acked: list[int] = []
    gate = asyncio.Event()
    running = 0
    peak = 0

    def work(i: int):  # type: ignore[no-untyped-def]
        async def run() -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            if i == 0:
                await gate.wait()
            else:
                await asyncio.sleep(0.001)
            running -= 1

        return run

    window: AckWindow[int] = AckWindow(limit=4, ack=acked.append, partition_of=lambda r: 0)
    for i in range(4):
        await window.submit(i, work(i))
    await asyncio.sleep(0.05)
    assert acked == []  # 1..3 finished, but 0 has not
    # All slots but one were freed; a fifth submit must not wait for record 0.
    await asyncio.wait_for(window.submit(4, work(4)), 1)
    gate.set()
    await window.drain()
    assert acked == [0, 1, 2, 3, 4]
    assert peak <= 4


async def test_failing_work_is_retried_not_acked_or_skipped() -> None:
    acked: list[int] = []
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("broker timeout")

    window: AckWindow[int] = AckWindow(
        limit=2, ack=acked.append, partition_of=lambda r: 0, retry_delay_s=0.01
    )
    await window.submit(1, flaky)
    await window.drain()
    assert calls == 3
    assert acked == [1]


async def test_keyed_chain_orders_per_key_and_overlaps_keys() -> None:
    chain = KeyedChain()
    log: list[str] = []

    async def step(name: str, delay: float) -> None:
        log.append(f"start {name}")
        await asyncio.sleep(delay)
        log.append(f"end {name}")

    await asyncio.gather(
        chain.run("a", lambda: step("a1", 0.03)),
        chain.run("a", lambda: step("a2", 0.0)),
        chain.run("b", lambda: step("b1", 0.0)),
    )
    assert log.index("end a1") < log.index("start a2")
    assert log.index("end b1") < log.index("end a1")  # b did not wait for a


async def test_a_stray_cancelled_error_is_retried_not_left_as_a_hole() -> None:
    # An awaited future that something else cancelled raises CancelledError in the work
    # without the task being cancelled. That record must be done again and acked in order;
    # leaving it as a gap would let Faust commit past it (its gap check misses one offset).
    acked: list[int] = []
    window: AckWindow[int] = AckWindow(8, acked.append, lambda r: 0, retry_delay_s=0.001)
    runs = {"first": 0}

    async def cancelled_once() -> None:
        runs["first"] += 1
        if runs["first"] == 1:
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            await future

    async def ok() -> None:
        await asyncio.sleep(0.001)

    await window.submit(0, cancelled_once)
    for record in range(1, 6):
        await window.submit(record, ok)
    await window.drain()
    await asyncio.sleep(0.01)
    assert runs["first"] == 2
    assert acked == [0, 1, 2, 3, 4, 5]


async def test_a_cancelled_head_holds_its_partition_but_not_others() -> None:
    acked: list[tuple[str, int]] = []
    window: AckWindow[tuple[str, int]] = AckWindow(16, acked.append, lambda r: r[0])

    async def forever() -> None:
        await asyncio.sleep(3600)

    async def ok() -> None:
        await asyncio.sleep(0.001)

    await window.submit(("a", 0), forever)
    for offset in range(1, 4):
        await window.submit(("a", offset), ok)
        await window.submit(("b", offset), ok)
    await asyncio.sleep(0.05)
    head = window._pending["a"][0][1]
    head.cancel()  # shutdown: record a/0 will be replayed
    await window.drain()
    await asyncio.sleep(0.01)
    assert [r for r in acked if r[0] == "b"] == [("b", 1), ("b", 2), ("b", 3)]
    assert [r for r in acked if r[0] == "a"] == [], "acks ran ahead of a cancelled record"
