"""Replay's pure parts: headers and how ingest reads them, ranges, checkpoints, dry-run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from logic.dedupe import is_duplicate
from logic.replay import (
    HEADER_ID,
    HEADER_MODE,
    HEADER_SOURCE,
    Checkpoint,
    DryRunCounts,
    Mode,
    RangeRequest,
    ReplayError,
    Source,
    TopicKind,
    check_mode,
    dlq_target,
    ingress_position,
    parse_time,
    replay_headers,
    replay_id,
    replay_marker,
    resolve_range,
    superseded,
)
from logic.rules import load_rules
from schemas.common import Category
from schemas.users import Preferences
from tables.rows import SeenEvent
from tests.factories import event_bytes

RULES = load_rules()
NOW = datetime.now(UTC)


# -- headers ---------------------------------------------------------------------------------


def test_source_round_trips_and_rejects_garbage() -> None:
    s = Source("t1.events.social", 3, 42)
    assert Source.parse(s.encode()) == s
    assert Source.parse(b"no-slashes") is None
    assert Source.parse(b"t/x/1") is None


def test_marker_is_none_for_ordinary_and_dry_run_records() -> None:
    assert replay_marker(None) is None
    assert replay_marker([("other", b"x")]) is None
    assert replay_marker([(HEADER_MODE, b"dry-run")]) is None
    assert replay_marker([(HEADER_MODE, b"bogus")]) is None


def test_marker_reads_mode_and_source_from_list_or_mapping() -> None:
    headers = [(HEADER_MODE, b"state-only"), (HEADER_SOURCE, b"events.social/2/7")]
    for form in (headers, dict(headers)):
        marker = replay_marker(form)
        assert marker is not None
        assert marker.mode is Mode.STATE_ONLY and not marker.forwards
        assert marker.source == Source("events.social", 2, 7)
    redeliver = replay_marker([(HEADER_MODE, b"redeliver")])
    assert redeliver is not None and redeliver.forwards and redeliver.source is None


def test_a_replay_of_the_same_topic_is_processed_at_the_original_position() -> None:
    marker = replay_marker([(HEADER_MODE, b"redeliver"), (HEADER_SOURCE, b"ev/2/7")])
    assert ingress_position(marker, "ev", 2, 900) == (2, 7)
    # A dead letter replayed to its source topic is a new message at its new position.
    from_dlq = replay_marker([(HEADER_MODE, b"redeliver"), (HEADER_SOURCE, b"dlq.events/0/5")])
    assert ingress_position(from_dlq, "ev", 2, 900) == (2, 900)
    assert ingress_position(None, "ev", 2, 900) == (2, 900)


def test_dedupe_lets_a_replay_through_but_still_drops_a_real_duplicate() -> None:
    seen = SeenEvent(7, NOW.timestamp(), "ev:0")  # the event id was first seen at offset 7
    replayed = replay_marker([(HEADER_MODE, b"redeliver"), (HEADER_SOURCE, b"ev/0/7")])
    assert not is_duplicate(seen, "ev:0", ingress_position(replayed, "ev", 0, 900)[1])
    # The original stream had a duplicate of it at offset 9: replaying 9 drops it again.
    dup = replay_marker([(HEADER_MODE, b"redeliver"), (HEADER_SOURCE, b"ev/0/9")])
    assert is_duplicate(seen, "ev:0", ingress_position(dup, "ev", 0, 901)[1])


def test_replay_headers_keep_the_original_ones_and_add_the_replays() -> None:
    out = replay_headers(
        [("trace", b"abc"), (HEADER_MODE, b"state-only")],
        Mode.REDELIVER,
        Source("ev", 1, 5),
        "rid",
        from_dlq=False,
    )
    assert out == [
        ("trace", b"abc"),
        (HEADER_MODE, b"redeliver"),
        (HEADER_SOURCE, b"ev/1/5"),
        (HEADER_ID, b"rid"),
    ]


def test_replaying_a_replayed_copy_points_at_the_original_message() -> None:
    copy = [(HEADER_MODE, b"redeliver"), (HEADER_SOURCE, b"ev/1/5"), (HEADER_ID, b"old")]
    out = dict(replay_headers(copy, Mode.REDELIVER, Source("ev", 1, 80), "new", from_dlq=False))
    assert out[HEADER_SOURCE] == b"ev/1/5" and out[HEADER_ID] == b"new"


def test_dead_letters_lose_their_dlq_headers_and_name_their_source() -> None:
    dlq = [
        ("clarion.dlq.reason", b"schema_violation"),
        ("clarion.dlq.source.topic", b"p.events.social"),
        ("clarion.dlq.source.partition", b"3"),
    ]
    assert dlq_target(dlq) == ("p.events.social", 3)
    assert dlq_target([("clarion.dlq.reason", b"x")]) is None
    out = replay_headers(dlq, Mode.REDELIVER, Source("p.dlq.events", 0, 4), "r", from_dlq=True)
    assert [k for k, _ in out] == [HEADER_MODE, HEADER_SOURCE, HEADER_ID]


def test_state_only_is_refused_for_dead_letters() -> None:
    with pytest.raises(ReplayError, match="state-only is not available"):
        check_mode(TopicKind.DEAD_LETTERS, Mode.STATE_ONLY, "dlq.events")
    check_mode(TopicKind.DEAD_LETTERS, Mode.REDELIVER, "dlq.events")
    check_mode(TopicKind.PROFILE, Mode.STATE_ONLY, "preferences")


# -- ranges ----------------------------------------------------------------------------------


def test_whole_partition_by_default() -> None:
    assert resolve_range("t", 0, 10, 50, RangeRequest()) == (10, 50)
    assert resolve_range("t", 0, 5, 5, RangeRequest()) == (5, 5)


def test_offset_range_is_validated_against_the_watermarks() -> None:
    req = RangeRequest(from_offset=12, to_offset=20)
    assert resolve_range("t", 0, 10, 50, req) == (12, 20)
    with pytest.raises(
        ReplayError, match=r"--from-offset 9 is out of range for t\[0\]: .*10\.\.49"
    ):
        resolve_range("t", 0, 10, 50, RangeRequest(from_offset=9))
    with pytest.raises(ReplayError, match="--from-offset 50 is out of range"):
        resolve_range("t", 0, 10, 50, RangeRequest(from_offset=50))
    with pytest.raises(ReplayError, match="--to-offset 51 is out of range"):
        resolve_range("t", 0, 10, 50, RangeRequest(to_offset=51))
    with pytest.raises(ReplayError, match="it is empty"):
        resolve_range("t", 3, 0, 0, RangeRequest(from_offset=0))
    assert resolve_range("t", 0, 10, 50, RangeRequest(to_offset=50)) == (10, 50)


def test_time_range_uses_the_brokers_offsets() -> None:
    since, until = NOW - timedelta(hours=1), NOW
    req = RangeRequest(since=since, until=until)
    assert resolve_range("t", 0, 10, 50, req, since_offset=20, until_offset=30) == (20, 30)
    # Nothing at/after --since: an empty range at the end; nothing at/after --until: to the end.
    assert resolve_range("t", 0, 10, 50, req, since_offset=None, until_offset=None) == (50, 50)
    assert resolve_range("t", 0, 10, 50, req, since_offset=15, until_offset=None) == (15, 50)


def test_contradictory_requests_are_refused() -> None:
    with pytest.raises(ReplayError, match="not both"):
        RangeRequest(from_offset=1, since=NOW)
    with pytest.raises(ReplayError, match="not both"):
        RangeRequest(to_offset=1, until=NOW)
    with pytest.raises(ReplayError, match="greater than"):
        RangeRequest(from_offset=5, to_offset=5)
    with pytest.raises(ReplayError, match="later than"):
        RangeRequest(since=NOW, until=NOW)


def test_parse_time_defaults_to_utc() -> None:
    assert parse_time("2026-11-22T10:00:00") == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert parse_time("2026-11-22T10:00:00Z") == datetime(2026, 11, 22, 10, tzinfo=UTC)
    with pytest.raises(ReplayError, match="ISO 8601"):
        parse_time("yesterday")


# -- replay id and checkpoint --------------------------------------------------------------


def test_replay_id_is_stable_per_command_line() -> None:
    req = RangeRequest(from_offset=1)
    a = replay_id("t", (1, 0), req, Mode.REDELIVER)
    assert a == replay_id("t", [0, 1], RangeRequest(from_offset=1), Mode.REDELIVER)
    assert a != replay_id("t", (0, 1), req, Mode.STATE_ONLY)
    assert a != replay_id("t", None, req, Mode.REDELIVER)


def test_checkpoint_tracks_progress_and_round_trips() -> None:
    cp = Checkpoint("rid", "t", Mode.REDELIVER, {0: (10, 20), 1: (0, 5)})
    assert (cp.total, cp.completed) == (15, 0)
    cp.advance(0, 15)
    cp.advance(0, 12)  # never backwards
    cp.advance(1, 5)
    cp.produced, cp.skipped["no_source"] = 10, 1
    assert cp.completed == 10 and cp.remaining() == {0: (15, 20)}
    back = Checkpoint.from_json(cp.to_json())
    assert back == cp
    assert json.loads(cp.to_json())["next"] == {"0": 15, "1": 5}


def test_unreadable_checkpoint_says_how_to_recover() -> None:
    with pytest.raises(ReplayError, match="--restart"):
        Checkpoint.from_json("{not json")


def test_superseded_compacted_records_are_left_out() -> None:
    latest: dict[bytes | None, int] = {b"alice": 9, b"bob": 3}
    assert superseded(b"alice", 4, latest)
    assert not superseded(b"alice", 9, latest)
    assert not superseded(b"carol", 1, latest)


# -- dry-run -------------------------------------------------------------------------------


def test_dry_run_counts_lanes_channels_and_rejections() -> None:
    counts = DryRunCounts()
    payment = event_bytes("payment", recipient_id="a")
    for raw in (payment, payment, event_bytes("like"), event_bytes("message"), b"{oops", None):
        counts.count_event(raw, RULES, 65536, NOW)
    counts.count_event(event_bytes("live_started"), RULES, 65536, NOW)
    old = (NOW - timedelta(days=3)).isoformat()
    counts.count_event(event_bytes("payment", occurred_at=old), RULES, 65536, NOW)
    d = counts.to_dict()
    assert d["records"] == 8
    assert d["lanes"] == {"critical": 1, "high": 1, "social": 1}
    assert d["channels"]["critical/email"] == 1 and d["channels"]["high/push"] == 1
    assert sum(d["channels"].values()) == sum(
        len(RULES.for_category(Category(c)).channels) for c in ("payment", "like", "message")
    )
    assert d["invalid"] == {"empty_payload": 1, "malformed_json": 1}
    assert (d["duplicates"], d["broadcasts"], d["expired"]) == (1, 1, 1)


def test_dry_run_counts_profile_records() -> None:
    counts = DryRunCounts()
    good = json.dumps({"user_id": "alice"}).encode()
    counts.count_profile(b"alice", good, Preferences)
    counts.count_profile(b"bob", good, Preferences)  # key does not match
    counts.count_profile(b"alice", b"[]", Preferences)
    counts.count_profile(b"alice", None, Preferences)
    assert counts.to_dict()["profiles"] == {"invalid": 2, "tombstone": 1, "valid": 1}
