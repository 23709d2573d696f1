from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from logic import windows
from logic.classify import to_notification
from logic.render import default_renderer
from logic.rules import load_rules
from logic.validation import decode_event
from schemas.common import Category
from schemas.notifications import Notification
from tests.factories import event_bytes

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RULES = load_rules()


def like(
    actor: str, photo: str = "p1", offset: int = 0, tp: str = "events.social:0", **overrides: object
) -> Notification:
    event = decode_event(
        event_bytes(
            "like",
            actor_id=actor,
            actor_name=actor.title(),
            object={"kind": "photo", "id": photo},
            **overrides,
        ),
        65536,
    )
    n = to_notification(event, RULES, NOW)  # type: ignore[arg-type]
    return n.model_copy(update={"source_tp": tp, "source_offset": offset})


@settings(max_examples=300, deadline=None)
@given(ts=st.floats(min_value=0, max_value=4e9), size=st.sampled_from([30.0, 45.0, 60.0, 3600.0]))
def test_aligned_window_contains_its_instant_and_tiles_time(ts: float, size: float) -> None:
    start, end = windows.aligned_window(ts, size)
    assert start <= ts < end
    assert end - start == size
    assert windows.aligned_window(end, size)[0] == end  # the next window starts where it ends


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), st.integers(1, 5)),
        min_size=1,
        max_size=50,
    )
)
def test_window_counts_every_event_and_names_the_first_distinct_actors(
    events: list[tuple[str, int]],
) -> None:
    offset = 0
    w = None
    for actor, _ in events:
        n = like(actor, offset=offset)
        offset += 1
        w = (
            windows.open_window(n, "like:photo:p1", 100.0, 30.0, 0.0)
            if w is None
            else windows.add_to_window(w, n, RULES.max_actors, None)
        )
    assert w is not None
    assert w.count == len(events)
    distinct = list(dict.fromkeys(a for a, _ in events))
    assert list(w.actor_ids) == distinct[: RULES.max_actors]
    assert w.sources == {"events.social:0": len(events) - 1}


def test_aggregate_renders_the_count_and_keeps_a_stable_id() -> None:
    w = windows.open_window(like("alice"), "like:photo:p1", 100.0, 30.0, 0.0)
    for i in range(999_999):
        if i < 2:
            w = windows.add_to_window(w, like(f"u{i}", offset=i + 1), RULES.max_actors, None)
    w = w.model_copy(update={"count": 1_000_000})
    n = windows.to_notification(w)
    assert n.count == 1_000_000
    assert n.notification_id == windows.to_notification(w).notification_id
    body = default_renderer().render(n, "en").body
    assert body == "Alice and 999,999 others liked your photo"


def test_single_event_window_is_the_original_notification() -> None:
    n = like("alice")
    w = windows.open_window(n, "like:photo:p1", 100.0, 30.0, 0.0)
    assert windows.to_notification(w) == n


def test_late_notification_joins_the_window_open_now() -> None:
    # Its own window [0, 30) was already flushed (closed_until=31): never reopen it.
    w = windows.open_window(like("alice"), "g", ts=10.0, size=30.0, closed_until=31.0)
    assert (w.window_start, w.window_end) == (30.0, 60.0)


def test_held_window_keeps_gathering_until_its_deadline() -> None:
    w = windows.open_window(
        like("alice"), "g", ts=10.0, size=30.0, closed_until=0.0, hold_until=500.0
    )
    assert w.deadline == 500.0
    assert windows.belongs_to(w, 400.0)
    assert not windows.belongs_to(w, 500.0)


def test_replayed_copies_are_recognised_by_their_ingress_offset() -> None:
    marks = {"events.social:0": 41}
    assert windows.already_counted(marks, like("a", offset=41))
    assert not windows.already_counted(marks, like("a", offset=42))
    assert not windows.already_counted(marks, like("a", offset=3, tp="events.social:1"))


def test_group_keys_follow_the_rules() -> None:
    rule = RULES.for_category(Category.LIKE)
    assert windows.group_key(like("a", photo="p1"), rule) == "like:photo:p1"
    assert windows.group_key(like("a", photo="p2"), rule) != windows.group_key(like("a"), rule)
    follow = RULES.for_category(Category.FOLLOW)
    assert windows.group_key(like("a"), follow) == "like"


def test_window_time_is_event_time_but_never_in_the_future() -> None:
    assert windows.window_time(occurred_at=100.0, record_time=130.0) == 100.0
    assert windows.window_time(occurred_at=999.0, record_time=130.0) == 130.0


def test_expiry_follows_the_latest_event() -> None:
    early = like("a", occurred_at=(NOW - timedelta(hours=5)).isoformat())
    late = like("b", offset=1, occurred_at=NOW.isoformat())
    w = windows.open_window(early, "g", 0.0, 30.0, 0.0)
    w = windows.add_to_window(w, late, 3, None)
    assert w.expires_at == late.expires_at.timestamp()  # type: ignore[union-attr]


def test_partition_of_matches_kafkas_default_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    from logic.partitioning import partition_of

    for user in ("alice", "bob", "user-12345", "star"):
        assert partition_of(user, 8) == DefaultPartitioner()(user.encode(), list(range(8)), [])
