"""The follow graph's loader step, in-process: a fetched batch of `follows` records becomes
rows of `followers` (a tombstone removes one, the newest record of a key wins), and a bad
record is refused, not applied. (Its dead letter: test_dead_letters.py; the loader reading
a real broker: tests/integration/test_fanout.py.)"""

from __future__ import annotations

import json

from agents import graph
from logic import deadletter
from tables.keys import edge_key
from tests.stages.harness import StageHarness
from tests.stages.inputs import follows_record


def edge(actor: str, follower: str, **extra: str) -> bytes:
    return json.dumps({"actor_id": actor, "follower_id": follower, **extra}).encode()


def rows(stage: StageHarness) -> dict[bytes, float]:
    return dict(stage.ctx.tables.followers.data.items())


async def test_a_batch_becomes_rows_and_a_tombstone_removes_one(stage: StageHarness) -> None:
    apply = graph.applier(stage.app, stage.ctx)
    batch = [
        follows_record(0, edge_key("star", "ann"), edge("star", "ann"), timestamp_ms=1_000),
        follows_record(
            1,
            edge_key("star", "bob"),
            edge("star", "bob", followed_at="2026-01-01T00:00:00Z"),
        ),
        follows_record(2, edge_key("star", "cy"), edge("star", "cy"), timestamp_ms=3_000),
        follows_record(3, edge_key("star", "ann"), None),  # ann unfollows
        follows_record(4, edge_key("star", "cy"), edge("star", "cy"), timestamp_ms=5_000),
    ]
    assert apply(0, batch) == []
    assert rows(stage) == {
        edge_key("star", "bob"): 1767225600.0,
        edge_key("star", "cy"): 5.0,  # the newer record of the key
    }


async def test_a_bad_record_is_refused_and_the_rest_applied(stage: StageHarness) -> None:
    apply = graph.applier(stage.app, stage.ctx)
    batch = [
        follows_record(0, b"star/someone-else", edge("star", "ann")),  # key is not the edge's
        follows_record(1, edge_key("star", "bob"), b"{not json"),
        follows_record(2, edge_key("star", "cy"), edge("star", "cy")),
    ]
    dead_letters = apply(0, batch)
    assert len(dead_letters) == 2
    for dead_letter in dead_letters:
        await dead_letter
    assert list(rows(stage)) == [edge_key("star", "cy")]
    reasons = [r.header(deadletter.REASON) for r in stage.sent(stage.ctx.topics.dlq_events)]
    assert sorted(reasons) == ["bad_key", "schema_violation"]


def test_followed_at_is_the_edges_time_or_the_records() -> None:
    key = edge_key("star", "ann")
    assert graph.followed_at(key, edge("star", "ann"), 2_500) == 2.5
    stamped = edge("star", "ann", followed_at="2026-01-01T00:00:00+01:00")
    assert graph.followed_at(key, stamped, 2_500) == 1767222000.0
