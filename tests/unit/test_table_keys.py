"""tables/keys.py: every table key, byte for byte what the tables held before the builders
moved there (a deployment's changelogs must keep matching), and the parsers' round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.common import Channel
from tables import keys

# Ids as schemas.common.Id allows them: no "/" and no control characters such as \x1f.
ids = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/"), min_size=1
)


def test_key_bytes_are_todays_formats() -> None:
    # The literals are what the ad-hoc builders produced before tables/keys.py.
    assert keys.user_key("alice") == b"alice"
    assert keys.user_key("zoë") == b"zo\xc3\xab"
    assert keys.seen_key("ev-1") == b"ev-1"
    assert keys.window_key("alice", "like:photo:p1") == b"alice\x1flike:photo:p1"
    assert keys.digest_progress_key(3) == b"\x00progress\x1f3"
    assert keys.digest_progress_key(12) == b"\x00progress\x1f12"
    assert keys.bucket_key("alice", Channel.PUSH) == b"alice\x1fpush"
    assert keys.bucket_key("alice", Channel.IN_APP) == b"alice\x1fin_app"
    assert keys.ledger_key("alice", "d0f1") == b"alice\x1fd0f1"
    assert keys.confirmed_key("alice", "n-9") == b"alice\x1fn-9"
    assert keys.lease_key("gw-1") == b"\x00lease\x1fgw-1"
    assert keys.presence_record_key("alice", "gw-1") == b"alice\x1fgw-1"
    assert keys.edge_key("bob", "alice") == b"bob/alice"
    assert keys.audience_prefix("bob") == b"bob/"
    assert keys.fanout_key("b1", 7) == b"b1/7"
    assert keys.fanout_prefix("b1") == b"b1/"
    assert keys.user_prefix("alice") == b"alice\x1f"


def test_a_users_composite_rows_share_the_prefix_and_no_other_users_do() -> None:
    for key in (
        keys.window_key("alice", "like:photo:p1"),
        keys.bucket_key("alice", Channel.SMS),
        keys.ledger_key("alice", "d1"),
        keys.confirmed_key("alice", "n1"),
    ):
        assert key.startswith(keys.user_prefix("alice"))
        assert not key.startswith(keys.user_prefix("alic"))
        assert keys.split_user_row(key)[0] == "alice"
    assert not keys.window_key("alice2", "x").startswith(keys.user_prefix("alice"))


def test_edge_keys_put_an_actors_followers_in_one_key_range() -> None:
    key = keys.edge_key("bob", "alice")
    assert key.startswith(keys.audience_prefix("bob"))
    assert not key.startswith(keys.audience_prefix("bo"))  # "bo/" is not a prefix of "bob/…"
    assert keys.follower_of(key) == "alice"
    assert keys.rest_of(key, keys.audience_prefix("bob")) == "alice"


def test_edge_key_must_match_the_value() -> None:
    keys.check_edge_key(b"bob/alice", "bob", "alice")
    for wrong in (None, b"alice/bob", b"bob", b"bob/alice2", b"bob/alic\xff"):
        with pytest.raises(keys.BadEdgeKey, match="must be 'bob/alice'"):
            keys.check_edge_key(wrong, "bob", "alice")


def test_progress_rows_are_told_from_windows() -> None:
    assert keys.digest_progress_partition(keys.digest_progress_key(5)) == 5
    assert keys.digest_progress_partition(keys.window_key("alice", "like")) is None
    assert keys.digest_progress_partition(keys.lease_key("5")) is None


def test_parsers_refuse_keys_of_another_shape() -> None:
    with pytest.raises(ValueError):
        keys.split_user_row(b"alice")
    with pytest.raises(ValueError):
        keys.rest_of(b"bob/alice", b"carol/")


@given(ids, ids)
def test_composite_keys_split_back(user: str, rest: str) -> None:
    assert keys.split_user_row(keys.ledger_key(user, rest)) == (user, rest)
    assert keys.split_user_row(keys.window_key(user, rest)) == (user, rest)
    assert keys.rest_of(keys.confirmed_key(user, rest), keys.user_prefix(user)) == rest
    assert keys.follower_of(keys.edge_key(user, rest)) == rest
    keys.check_edge_key(keys.edge_key(user, rest), user, rest)


@given(ids, st.integers(min_value=0, max_value=10_000))
def test_partition_keys_round_trip(event_id: str, partition: int) -> None:
    assert keys.digest_progress_partition(keys.digest_progress_key(partition)) == partition
    key = keys.fanout_key(event_id, partition)
    assert keys.rest_of(key, keys.fanout_prefix(event_id)) == str(partition)
