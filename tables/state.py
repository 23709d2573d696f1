"""Every Clarion table. All are RocksDB-backed with changelog topics (named after the app id),
keyed by the same raw user-id (or event-id) bytes as the topics that feed them, so a lookup
made while processing partition p reads partition p's store: the co-partitioned "join".
Keys are built by tables/keys.py; each table's value is typed (tables/rows.py or a schema
model) and has its own codec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import faust
from faust.serializers.codecs import Codec

from schemas.graph import FanoutProgress
from schemas.notifications import InboxItem
from schemas.users import ContactPoints, Preferences
from streams.codec import MsgspecCodec, PydanticCodec
from tables import rows

# Decoded profiles kept per table (by their bytes): ~1 KiB each, so ~16 MiB at most.
PROFILE_MEMO = 16_384

if TYPE_CHECKING:
    from streams.settings import Settings
    from streams.topics import Topics


class DigestsCodec(Codec):  # type: ignore[misc]
    """The `digests` table's two kinds of rows (tables.rows.DigestRow): open windows
    (pydantic DigestWindow JSON) and per-partition progress rows (msgspec)."""

    def _dumps(self, obj: Any) -> bytes:
        return rows.encode_digest_row(obj)

    def _loads(self, s: bytes) -> rows.DigestRow:
        return rows.decode_digest_row(s)


def _rocksdb_options(settings: Settings) -> dict[str, Any]:
    # Faust's default block cache is 2 GiB per store: size it for many partitions on one host.
    return {
        "block_cache_size": settings.rocksdb_block_cache_mb * 1024 * 1024,
        "write_buffer_size": 16 * 1024 * 1024,
    }


class Tables:
    """One app's tables, one attribute each (see the comments for their rows)."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        _settings = settings
        _ROCKSDB_OPTIONS = _rocksdb_options(settings)

        def _table(name: str, value_serializer: Any, help: str, **kwargs: Any) -> faust.Table:
            table = app.Table(
                name,
                key_type=bytes,  # raw key bytes, as on the topics
                partitions=_settings.partitions,
                options=_ROCKSDB_OPTIONS | kwargs.pop("options", {}),
                help=help,
                **kwargs,
            )
            # Table() takes no serializer argument; the store and changelog topic are built
            # lazily from this attribute, so setting it here (before the worker starts) is
            # enough.
            table.value_serializer = value_serializer  # type: ignore[attr-defined]
            return table  # type: ignore[return-value]

        # Read for every notification routed and every window flushed, written when a user
        # changes them: decoded values are kept by their bytes (PydanticCodec's memo).
        self.preferences = _table(
            "preferences",
            PydanticCodec(Preferences, memo=PROFILE_MEMO),
            "user id -> Preferences (compacted topic)",
        )
        self.contacts = _table(
            "contacts",
            PydanticCodec(ContactPoints, memo=PROFILE_MEMO),
            "user id -> ContactPoints (compacted topic)",
        )
        # Dedupe is bounded by time, not by code: RocksDB's TTL drops old keys from the local store
        # at compaction and the changelog's delete policy drops them from Kafka, so a restore never
        # brings them back.
        self.seen_events = _table(
            "seen-events",
            MsgspecCodec(rows.SeenEvent),
            "event id -> SeenEvent [ingress offset, first-seen unix time, source] (dedupe)",
            options={"ttl": _settings.dedupe_horizon_s},
            extra_topic_configs={
                "cleanup.policy": "compact,delete",
                "retention.ms": str(_settings.dedupe_horizon_s * 1000),
            },
        )
        # Open aggregation windows (DigestWindow JSON) keyed "recipient\x1fgroup key", plus one
        # progress row per partition ({lane: LaneProgress}); see agents/digest.py.
        self.digests = _table(
            "digests", DigestsCodec(), "recipient+group -> open aggregation window"
        )
        # Token buckets keyed "recipient\x1fchannel" -> BucketRow [tokens, updated_at].
        self.buckets = _table(
            "buckets",
            MsgspecCodec(rows.BucketRow),
            "recipient+channel -> token bucket [tokens, updated_at]",
        )
        self.inbox = _table(
            "inbox", PydanticCodec(list[InboxItem]), "user id -> newest in-app items (SSE resume)"
        )
        # Idempotency ledger: "recipient\x1fdelivery id" -> LedgerEntry [unix time sent, provider
        # message id].
        # A delivery id is a hash of (notification id, channel, target), so a redelivery after a
        # crash or rebalance, a retry racing its original, or a replay finds it and is skipped.
        # Kept for CLARION_LEDGER_HORIZON_S, like the dedupe table.
        self.ledger = _table(
            "ledger",
            MsgspecCodec(rows.LedgerEntry),
            "recipient+delivery id -> [sent at, provider message id] (idempotency)",
            options={"ttl": _settings.ledger_horizon_s},
            extra_topic_configs={
                "cleanup.policy": "compact,delete",
                "retention.ms": str(_settings.ledger_horizon_s * 1000),
            },
        )
        # Presence: user id -> {gateway id: epoch} (where the user has connections), plus one lease
        # row per gateway in every partition (tables.keys.lease_key -> LeaseRow [epoch,
        # expires at]).
        self.presence = _table(
            "presence",
            MsgspecCodec(rows.PresenceRow),
            "user id -> {gateway: epoch}; gateway leases",
        )
        # Critical notifications the user confirmed: "recipient\x1fnotification id" -> unix time.
        self.confirmed = _table(
            "confirmed",
            MsgspecCodec(rows.ConfirmedAt),
            "recipient+notification id -> confirmed at (stops escalation)",
            options={"ttl": _settings.ledger_horizon_s},
            extra_topic_configs={
                "cleanup.policy": "compact,delete",
                "retention.ms": str(_settings.ledger_horizon_s * 1000),
            },
        )
        # The follow graph, one row per edge: "<actor>/<follower>" -> followed-at unix time. Rows
        # are spread over all partitions by the edge key, so a celebrity's 50 million followers are
        # 50 million small rows on every partition, never one value; the fan-out pages each
        # partition's share with a range scan (tables/scan.py).
        self.followers = _table(
            "followers",
            MsgspecCodec(rows.FollowedAt),
            "actor/follower -> followed at (the follow graph)",
        )
        # Fan-out checkpoints: "<broadcast event id>/<partition>" -> FanoutProgress.
        self.fanout = _table(
            "fanout",
            PydanticCodec(FanoutProgress),
            "broadcast/partition -> fan-out progress (resume point)",
            options={"ttl": _settings.ledger_horizon_s},
            extra_topic_configs={
                "cleanup.policy": "compact,delete",
                "retention.ms": str(_settings.ledger_horizon_s * 1000),
            },
        )


class TablesAndTopics(Protocol):
    """What the helpers in tables/ need of a stage's context (streams/context.py, the layer
    above): they take this, so tables/ never names the context."""

    @property
    def tables(self) -> Tables: ...

    @property
    def topics(self) -> Topics: ...
