"""tables/rows.py and the tables' codecs: typed rows round-trip, and the bytes the tables held
before (bare JSON lists, dicts and numbers written by Faust's "json" codec, spelled out here
literally) still decode, so existing stores and changelogs are read as they are."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logic import windows
from logic.buckets import BucketState
from logic.rules import load_rules
from schemas.common import Lane
from schemas.digests import DigestWindow
from streams.codec import MsgspecCodec
from tables import rows
from tables.state import DigestsCodec
from tests.stages.inputs import notification

finite = st.floats(allow_nan=False, allow_infinity=False)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
text = st.text(max_size=40)


def codec_for(tp: Any) -> MsgspecCodec[Any]:
    return MsgspecCodec(tp)


def window() -> DigestWindow:
    n = notification(load_rules(), "like", recipient_id="alice")
    return windows.open_window(n, "like:photo:p1", ts=10.0, size=30.0, closed_until=0.0)


# -- today's bytes decode ---------------------------------------------------------------------


def test_seen_events_rows_of_both_generations_decode() -> None:
    seen = codec_for(rows.SeenEvent)
    # Faust's "json" codec wrote these: [offset, time] before the source was recorded...
    assert seen.loads(b"[12, 1700000000.5]") == rows.SeenEvent(12, 1700000000.5, None)
    # ... and [offset, time, "topic:partition"] since.
    assert seen.loads(b'[12, 1700000000.5, "events.social:3"]') == rows.SeenEvent(
        12, 1700000000.5, "events.social:3"
    )
    # What is written now is the same JSON list.
    written = seen.dumps(rows.SeenEvent(12, 1700000000.5, "events.social:3"))
    assert json.loads(written) == [12, 1700000000.5, "events.social:3"]


def test_bucket_rows_decode_and_keep_their_list_form() -> None:
    bucket = codec_for(rows.BucketRow)
    # JSON hands back ints for whole numbers: the row's fields are floats all the same.
    row = bucket.loads(b"[2, 1700000000]")
    assert row == rows.BucketRow(2.0, 1_700_000_000.0)
    assert isinstance(row.tokens, float) and isinstance(row.updated_at, float)
    assert row.state() == BucketState(2.0, 1_700_000_000.0)
    assert bucket.loads(b"[1.25, 1700000000.0]").state() == BucketState(1.25, 1_700_000_000.0)
    assert json.loads(bucket.dumps(rows.BucketRow.of(BucketState(1.25, 5.0)))) == [1.25, 5.0]
    with pytest.raises(msgspec.ValidationError):
        bucket.loads(b"[1.0]")  # not a bucket


def test_ledger_rows_decode() -> None:
    ledger = codec_for(rows.LedgerEntry)
    assert ledger.loads(b'[1700000000.25, "msg-1"]') == rows.LedgerEntry(1700000000.25, "msg-1")
    assert ledger.loads(b"[1700000000.25, null]") == rows.LedgerEntry(1700000000.25, None)
    written = ledger.dumps(rows.LedgerEntry(1700000000.25, "msg-1"))
    assert json.loads(written) == [1700000000.25, "msg-1"]


def test_scalar_rows_decode() -> None:
    for tp in (rows.ConfirmedAt, rows.FollowedAt):
        codec = codec_for(tp)
        assert codec.loads(b"1700000000.5") == 1700000000.5
        assert codec.loads(b"1700000000") == 1_700_000_000.0
        assert json.loads(codec.dumps(1700000000.5)) == 1700000000.5


def test_presence_rows_of_both_kinds_decode() -> None:
    presence = codec_for(rows.PresenceRow)
    assert presence.loads(b'{"gw-1": "e1", "gw-2": "f7"}') == {"gw-1": "e1", "gw-2": "f7"}
    assert presence.loads(b"{}") == {}
    lease = presence.loads(b'["e1", 1700000030.5]')
    assert lease == rows.LeaseRow("e1", 1700000030.5)
    assert json.loads(presence.dumps(lease)) == ["e1", 1700000030.5]
    assert json.loads(presence.dumps({"gw-1": "e1"})) == {"gw-1": "e1"}


def test_digest_rows_of_both_kinds_decode() -> None:
    codec = DigestsCodec()
    w = window()
    # A window as the "json" codec stored it: model_dump(mode="json"), then json.dumps.
    old = json.dumps(w.model_dump(mode="json")).encode()
    assert codec.loads(old) == w
    assert json.loads(codec.dumps(w)) == w.model_dump(mode="json")
    # A progress row as agents/digest.py wrote it.
    progress = b'{"social": {"applied": {"events.social:0": 41}, "closed_until": 1700000030}}'
    decoded = codec.loads(progress)
    assert decoded == {Lane.SOCIAL: rows.LaneProgress({"events.social:0": 41}, 1_700_000_030.0)}
    assert json.loads(codec.dumps(decoded)) == json.loads(progress)
    with pytest.raises(ValueError):
        codec.loads(b"12")  # neither (e.g. Faust's offset entry, which scans skip)


# -- round trips ------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**62), times, st.none() | text)
def test_seen_event_round_trip(offset: int, at: float, source: str | None) -> None:
    codec = codec_for(rows.SeenEvent)
    row = rows.SeenEvent(offset, at, source)
    assert codec.loads(codec.dumps(row)) == row
    assert codec.loads(json.dumps([offset, at]).encode()) == rows.SeenEvent(offset, at)


@given(st.floats(min_value=0, max_value=1e6), times)
def test_bucket_round_trip(tokens: float, at: float) -> None:
    codec = codec_for(rows.BucketRow)
    state = BucketState(tokens, at)
    assert codec.loads(codec.dumps(rows.BucketRow.of(state))).state() == state
    # The old list form decodes to the same state.
    assert codec.loads(json.dumps([tokens, at]).encode()).state() == state


@given(times, st.none() | text)
def test_ledger_round_trip(at: float, message_id: str | None) -> None:
    codec = codec_for(rows.LedgerEntry)
    assert codec.loads(codec.dumps(rows.LedgerEntry(at, message_id))) == rows.LedgerEntry(
        at, message_id
    )
    assert codec.loads(json.dumps([at, message_id]).encode()) == rows.LedgerEntry(at, message_id)


@given(st.dictionaries(text, text, max_size=5), text, finite)
def test_presence_round_trip(user: dict[str, str], epoch: str, expires: float) -> None:
    codec = codec_for(rows.PresenceRow)
    assert codec.loads(codec.dumps(user)) == user
    assert codec.loads(json.dumps(user).encode()) == user
    lease = rows.LeaseRow(epoch, expires)
    assert codec.loads(codec.dumps(lease)) == lease
    assert codec.loads(json.dumps([epoch, expires]).encode()) == lease


@given(
    st.dictionaries(
        st.sampled_from(list(Lane)),
        st.builds(
            rows.LaneProgress,
            st.dictionaries(text, st.integers(min_value=-1, max_value=2**62), max_size=4),
            times,
        ),
        max_size=4,
    )
)
def test_digest_progress_round_trip(progress: rows.DigestProgress) -> None:
    codec = DigestsCodec()
    assert codec.loads(codec.dumps(progress)) == progress
    old = {
        lane.value: {"applied": p.applied, "closed_until": p.closed_until}
        for lane, p in progress.items()
    }
    assert codec.loads(json.dumps(old).encode()) == progress


@given(times)
def test_confirmed_round_trip(at: float) -> None:
    codec = codec_for(rows.ConfirmedAt)
    assert math.isclose(codec.loads(codec.dumps(at)), at, rel_tol=0, abs_tol=0)
