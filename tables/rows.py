"""Typed table rows: what each table's value is, decoded and encoded by msgspec.

The stored and changelogged bytes stay the JSON the tables held when their rows were bare
lists and dicts, so a deployment's existing stores and changelogs still decode (and a worker
of the previous version still reads what this one writes): a row that was a JSON list is an
`array_like` Struct (fields in the list's order), a row that was a scalar or a plain map is
that type. The tables whose rows were already pydantic models (preferences, contacts, inbox,
fanout, the digest windows) keep them.

Pure: no Faust. The Faust codecs that use these types are streams.codec.MsgspecCodec and
tables.state.DigestsCodec; the keys are in tables/keys.py.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec

from logic.buckets import BucketState
from schemas.common import Lane
from schemas.digests import DigestWindow

# -- seen-events ------------------------------------------------------------------------------


class SeenEvent(msgspec.Struct, array_like=True, frozen=True):
    """`seen-events`, event id -> where and when the event id first passed ingest:
    `[ingress offset, first-seen unix time, "topic:partition"]`. Rows written before the
    source was recorded hold only the first two (`source` None)."""

    offset: int
    first_seen_at: float
    source: str | None = None


# -- buckets ----------------------------------------------------------------------------------


class BucketRow(msgspec.Struct, array_like=True, frozen=True):
    """`buckets`, recipient+channel -> one token bucket: `[tokens, updated_at]`."""

    tokens: float
    updated_at: float  # unix seconds of the last refill computation

    @classmethod
    def of(cls, state: BucketState) -> BucketRow:
        return cls(state.tokens, state.updated_at)

    def state(self) -> BucketState:
        return BucketState(self.tokens, self.updated_at)


# -- ledger -----------------------------------------------------------------------------------


class LedgerEntry(msgspec.Struct, array_like=True, frozen=True):
    """`ledger`, recipient+delivery id -> the delivery was sent:
    `[sent at (unix seconds), provider message id]`."""

    sent_at: float
    provider_message_id: str | None = None


# -- confirmed, followers: one number each ------------------------------------------------------

ConfirmedAt: TypeAlias = float  # `confirmed`: unix seconds the user confirmed (read) it
FollowedAt: TypeAlias = float  # `followers`: unix seconds the edge was made

# -- presence ---------------------------------------------------------------------------------


class LeaseRow(msgspec.Struct, array_like=True, frozen=True):
    """`presence`, lease key -> one gateway's lease in this partition:
    `[epoch, expires at (unix seconds)]`."""

    epoch: str
    expires_at: float


UserPresence: TypeAlias = dict[str, str]  # `presence`, user id -> {gateway id: epoch}
# One table, two kinds of rows: a JSON object is a user's presence, a list a lease.
PresenceRow: TypeAlias = UserPresence | LeaseRow

# -- digests ----------------------------------------------------------------------------------


class LaneProgress(msgspec.Struct, frozen=True):
    """One lane's part of a `digests` progress row: per ingress "topic:partition" the
    highest offset folded into a window already sent, and the end of the newest window
    flushed."""

    applied: dict[str, int]
    closed_until: float


# `digests`, progress key -> {lane: LaneProgress} (one row per partition).
DigestProgress: TypeAlias = dict[Lane, LaneProgress]
# `digests`, window key -> the open window (a pydantic model: it holds a Notification).
DigestRow: TypeAlias = DigestWindow | DigestProgress

_encoder = msgspec.json.Encoder()
_progress: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


def encode_digest_row(row: DigestRow) -> bytes:
    if isinstance(row, DigestWindow):
        return DigestWindow.__pydantic_serializer__.to_json(row)
    return _encoder.encode(row)


def decode_digest_row(data: bytes) -> DigestRow:
    """A window is a JSON object with a `recipient_id`; a progress row maps lanes."""
    raw = _progress.decode(data)
    if not isinstance(raw, dict):
        raise ValueError(f"a digests row is a JSON object, got {type(raw).__name__}")
    if "recipient_id" in raw:
        return DigestWindow.model_validate(raw)
    return msgspec.convert(raw, DigestProgress)
