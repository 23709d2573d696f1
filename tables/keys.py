"""Every table key, built (and, where something reads keys back, parsed) in one place.

Keys are raw bytes, exactly as the tables' stores and changelog topics hold them: a
deployment's existing changelogs must keep matching, so these byte layouts never change.

- user-keyed rows: the raw UTF-8 user id (or event id), like the topics' keys;
- a user's composite rows (digests, buckets, ledger, confirmed): "<recipient>\\x1f<rest>".
  \\x1f cannot appear in an Id (schemas.common.Id), so "<recipient>\\x1f" is an unambiguous
  prefix, and a user's rows sort together in each partition's store (admin scans);
- per-partition bookkeeping rows start with \\x00, which no Id starts with;
- rows spread over every partition (followers, fanout): "<id>/<rest>". "/" cannot occur in
  an Id either, so "<actor>/<follower>" splits unambiguously and is easy for a producer of
  `follows` to build; keys sort by actor first, so one actor's followers are a contiguous
  key range in each partition's store, paged with a range scan (tables/scan.py).

Pure functions, no Faust: the gateway, the dev tools and the benchmarks build the same keys.
"""

from __future__ import annotations

from schemas.common import Channel

SEP = "\x1f"  # "<recipient>\x1f<rest>"
SLASH = "/"  # "<id>/<rest>"

# -- user-keyed rows (preferences, contacts, inbox, presence) and seen-events -----------------


def user_key(user_id: str) -> bytes:
    """Tables and topics are keyed by the raw UTF-8 user id (the producers' key bytes)."""
    return user_id.encode()


def seen_key(event_id: str) -> bytes:
    """`seen-events`: the raw UTF-8 event id."""
    return event_id.encode()


# -- a user's composite rows ------------------------------------------------------------------


def user_prefix(user_id: str) -> bytes:
    """Every composite row of one recipient starts with this, and sorts together."""
    return f"{user_id}{SEP}".encode()


def window_key(recipient_id: str, group: str) -> bytes:
    """`digests`: one open aggregation window per (recipient, group key)."""
    return f"{recipient_id}{SEP}{group}".encode()


def bucket_key(recipient_id: str, channel: Channel) -> bytes:
    """`buckets`: one token bucket per (recipient, channel)."""
    return f"{recipient_id}{SEP}{channel.value}".encode()


def ledger_key(recipient_id: str, delivery_id: str) -> bytes:
    """`ledger`: recipient first, so the key reads like the topics' keys and groups a
    user's rows."""
    return f"{recipient_id}{SEP}{delivery_id}".encode()


def confirmed_key(recipient_id: str, notification_id: str) -> bytes:
    """`confirmed`: a critical notification the user confirmed."""
    return f"{recipient_id}{SEP}{notification_id}".encode()


def split_user_row(key: bytes) -> tuple[str, str]:
    """(recipient, rest) of a composite row key "<recipient>\\x1f<rest>" (a ledger key's
    rest is the delivery id, a window key's the group key)."""
    recipient, sep, rest = key.decode().partition(SEP)
    if not sep:
        raise ValueError(f"{key!r} is not a '<recipient>\\x1f…' key")
    return recipient, rest


# -- per-partition bookkeeping rows -----------------------------------------------------------

# `digests` holds, beside the windows, one progress row per partition under this prefix.
DIGEST_PROGRESS_PREFIX = b"\x00progress\x1f"
# `presence` holds one lease row per gateway in every partition under this prefix.
LEASE_PREFIX = b"\x00lease\x1f"


def digest_progress_key(partition: int) -> bytes:
    return DIGEST_PROGRESS_PREFIX + str(partition).encode()


def digest_progress_partition(key: bytes) -> int | None:
    """The partition of a `digests` progress row's key; None for any other key (a window)."""
    if not key.startswith(DIGEST_PROGRESS_PREFIX):
        return None
    return int(key[len(DIGEST_PROGRESS_PREFIX) :])


def lease_key(gateway_id: str) -> bytes:
    """`presence`: a gateway's lease row (one copy in each partition's store). Also the key
    of the LEASE records the gateway sends to every `presence` partition."""
    return LEASE_PREFIX + gateway_id.encode()


def presence_record_key(user_id: str, gateway_id: str) -> bytes:
    """Key of a gateway's ONLINE/OFFLINE record on the compacted `presence` topic: one per
    (user, gateway) connection, so compaction keeps the last word on each (the table itself
    is keyed by user id)."""
    return f"{user_id}{SEP}{gateway_id}".encode()


# -- rows spread over every partition ---------------------------------------------------------


class BadEdgeKey(ValueError):
    """A `follows` record whose key is not "<actor_id>/<follower_id>" for its value."""


def edge_key(actor_id: str, follower_id: str) -> bytes:
    """`followers` (and the `follows` topic): one row per edge."""
    return f"{actor_id}{SLASH}{follower_id}".encode()


def audience_prefix(actor_id: str) -> bytes:
    """Every edge of one actor starts with this."""
    return f"{actor_id}{SLASH}".encode()


def follower_of(key: bytes) -> str:
    """The follower of an edge key."""
    return key.decode().split(SLASH, 1)[1]


def check_edge_key(key: bytes | None, actor_id: str, follower_id: str) -> None:
    """A `follows` record's key must be the edge key of its value."""
    if key != edge_key(actor_id, follower_id):
        expected = edge_key(actor_id, follower_id).decode()
        raise BadEdgeKey(f"key {key!r} must be '{expected}' (actor/follower)")


def fanout_key(event_id: str, partition: int) -> bytes:
    """`fanout`: one checkpoint per (broadcast, partition)."""
    return f"{event_id}{SLASH}{partition}".encode()


def fanout_prefix(event_id: str) -> bytes:
    """Every checkpoint of one broadcast starts with this."""
    return f"{event_id}{SLASH}".encode()


def rest_of(key: bytes, prefix: bytes) -> str:
    """What follows `prefix` in a key found by a prefix scan (shown by the admin views)."""
    if not key.startswith(prefix):
        raise ValueError(f"{key!r} does not start with {prefix!r}")
    return key[len(prefix) :].decode(errors="replace")
