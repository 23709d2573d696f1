from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logic.fanout import (
    advance,
    encoded_for_followers,
    next_task,
    pause_after_page,
    resume_task,
    should_run,
    stalled,
    to_follower,
)
from logic.rules import load_rules
from schemas.common import Category, Lane
from schemas.events import LiveStartedEvent
from schemas.graph import FanoutProgress, FanoutTask
from schemas.notifications import Notification
from tests.factories import event_dict

RULES = load_rules(None)


def broadcast(**overrides: object) -> LiveStartedEvent:
    return LiveStartedEvent.model_validate(event_dict("live_started", **overrides))


def task(page: int = 0, after: str | None = None) -> FanoutTask:
    return FanoutTask(broadcast=broadcast(event_id="b1"), partition=3, page=page, after=after)


def test_a_full_page_checkpoints_its_last_key_and_asks_for_the_next() -> None:
    keys = [b"bob/a", b"bob/b"]
    progress = advance(task(), None, keys, page_size=2, now=10.0)
    assert (progress.pages_done, progress.sent, progress.after, progress.done) == (
        1,
        2,
        "bob/b",
        False,
    )
    following = next_task(task(), progress)
    assert following is not None
    assert (following.page, following.after, following.partition) == (1, "bob/b", 3)


def test_a_short_page_finishes_and_keeps_the_totals() -> None:
    first = advance(task(), None, [b"bob/a", b"bob/b"], page_size=2, now=10.0)
    last = advance(task(1, "bob/b"), first, [b"bob/c"], page_size=2, now=12.0)
    assert (last.sent, last.done, last.started_at, last.updated_at) == (3, True, 10.0, 12.0)
    assert next_task(task(1, "bob/b"), last) is None


def test_an_empty_share_finishes_at_once() -> None:
    progress = advance(task(), None, [], page_size=100, now=1.0)
    assert progress.done and progress.sent == 0 and progress.after is None


def test_pages_already_checkpointed_are_not_run_again() -> None:
    checkpoint = FanoutProgress(
        broadcast=broadcast(event_id="b1"), partition=3, pages_done=2, started_at=0, updated_at=0
    )
    assert should_run(task(0), None)
    assert not should_run(task(1), checkpoint)  # a redelivered or duplicated earlier page
    assert should_run(task(2), checkpoint)  # the next page
    finished = checkpoint.model_copy(update={"done": True})
    assert not should_run(task(2), finished)


def test_follower_notification_ids_depend_only_on_event_and_follower() -> None:
    event = broadcast(event_id="b1", stream_title="Late show")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first = to_follower(event, "alice", RULES, now)
    again = to_follower(event, "alice", RULES, now + timedelta(minutes=5))
    other = to_follower(event, "carol", RULES, now)
    assert first.notification_id == again.notification_id != other.notification_id
    assert (first.recipient_id, first.category, first.lane) == (
        "alice",
        Category.LIVE_STARTED,
        Lane.BULK,
    )
    assert first.data == {"stream_title": "Late show"}
    assert first.expires_at == event.occurred_at + timedelta(seconds=1800)


def test_pacing_waits_for_the_rest_of_the_page_time() -> None:
    assert pause_after_page(500, 1000.0, 0.1) == pytest.approx(0.4)
    assert pause_after_page(500, 1000.0, 0.7) == 0.0
    assert pause_after_page(0, 1000.0, 0.0) == 0.0


def test_a_fanout_without_a_page_for_the_stall_time_resumes_at_its_checkpoint() -> None:
    progress = advance(task(), None, [b"bob/a", b"bob/b"], page_size=2, now=100.0)
    assert not stalled(progress, now=150.0, stall_s=60)
    assert stalled(progress, now=160.0, stall_s=60)
    resumed = resume_task(progress)
    assert (resumed.page, resumed.after, resumed.partition) == (1, "bob/b", 3)
    assert should_run(resumed, progress)
    finished = advance(task(1, "bob/b"), progress, [], page_size=2, now=101.0)
    assert not stalled(finished, now=1e9, stall_s=60)


def test_fanout_runs_with_the_bulk_lane_unless_deployed_on_its_own() -> None:
    from streams.settings import Settings

    assert Settings(lanes="all").runs_fanout
    assert not Settings(lanes="critical").runs_fanout
    only_fanout = Settings(lanes="none", fanout=True)
    assert only_fanout.served_lanes == frozenset() and only_fanout.runs_fanout
    assert not Settings(lanes="bulk", fanout=False).runs_fanout


@settings(max_examples=200, deadline=None)
@given(
    followers=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=5),
    title=st.text(max_size=40),
)
def test_each_follower_gets_exactly_the_bytes_of_its_own_notification(
    followers: list[str], title: str
) -> None:
    event = broadcast(event_id="b1", stream_title=title)
    now = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)
    encoded = list(encoded_for_followers(event, followers, RULES, now))
    assert [f for f, _ in encoded] == followers
    for follower, value in encoded:
        expected = to_follower(event, follower, RULES, now)
        assert value == expected.model_dump_json().encode()
        assert Notification.model_validate_json(value) == expected
