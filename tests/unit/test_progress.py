"""Processed positions survive neither a revocation nor a new consumer generation
(logic/progress.py): a stale position must not make a partition look caught up, or behind."""

from __future__ import annotations

from pathlib import Path

from logic.progress import ProcessedPositions, is_caught_up

TP = ("events.social", 3)


def test_caught_up_from_processed_position_or_committed_offset() -> None:
    assert is_caught_up(10, None, 10)
    assert not is_caught_up(9, 10, 10)  # the processed position wins over the committed one
    assert is_caught_up(None, 10, 10)  # nothing processed yet: resume point is the committed
    assert not is_caught_up(None, None, 1)
    assert is_caught_up(None, None, 0)
    assert not is_caught_up(10, 10, None)


def test_position_from_a_previous_assignment_does_not_close_a_window_early() -> None:
    """This worker processed up to offset 99 (next 100) but committed only 90; the partition
    moved away, its next owner died before committing, and it came back: the consumer
    resumes at 90 with 10 records to re-read, highwater still 100."""
    p: ProcessedPositions[tuple[str, int]] = ProcessedPositions()
    p.observe(TP, 99, generation=1)
    # Kept as it was before the fix, the stale position says caught up: an early close.
    assert is_caught_up(p.get(TP), 90, 100)
    p.forget({TP})  # on revocation
    assert p.next_offset(TP, generation=3) is None
    assert not is_caught_up(p.next_offset(TP, generation=3), 90, 100)


def test_position_from_a_previous_assignment_does_not_hold_a_quiet_partition_back() -> None:
    """Processed to 10, moved away, the other owner processed and committed to 50, back here
    with nothing new: caught up at 50 (a stale 11 would hold the cutoff at stream time
    until a new record arrived on this partition, possibly never)."""
    p: ProcessedPositions[tuple[str, int]] = ProcessedPositions()
    p.observe(TP, 10, generation=1)
    assert not is_caught_up(p.get(TP), 50, 50)  # what the stale position said
    p.forget([TP])
    assert is_caught_up(p.next_offset(TP, generation=2), 50, 50)


def test_a_position_taken_in_another_generation_is_ignored() -> None:
    """A record processed while a rebalance runs (after the revocation cleared the entry)
    is stamped with the old generation and does not count in the new one."""
    p: ProcessedPositions[tuple[str, int]] = ProcessedPositions()
    p.observe(TP, 99, generation=4)
    assert p.next_offset(TP, generation=4) == 100
    assert p.next_offset(TP, generation=5) is None
    p.observe(TP, 120, generation=5)
    assert p.next_offset(TP, generation=5) == 121
    assert p.get(TP) == 121 and len(p) == 1
    p.forget([("other", 0)])  # forgetting what is not there is fine
    assert len(p) == 1


async def test_the_apps_revocation_signal_forgets_positions(tmp_path: Path) -> None:
    """streams/positions.py is connected to Faust's on_partitions_revoked: sent as Faust sends
    it (after the agents finished their records), the revoked partitions' positions go —
    those of the app whose partitions were revoked, not another app's."""
    from faust.types import TP as FaustTP

    from streams.app import build_app
    from streams.settings import Settings

    app = build_app(Settings(data_dir=tmp_path / "a"))
    other = build_app(Settings(data_dir=tmp_path / "b"))
    positions = app.ctx.positions
    kept, revoked = FaustTP("events.social", 1), FaustTP("events.social", 2)
    positions.observe(kept, 5)
    positions.observe(revoked, 7)
    other.ctx.positions.observe(revoked, 9)
    await app.on_partitions_revoked.send({revoked})
    generation = app.consumer_generation_id
    assert positions._processed_next.next_offset(revoked, generation) is None
    assert positions._processed_next.next_offset(kept, generation) == 6
    assert other.ctx.positions._processed_next.next_offset(revoked, generation) == 10
