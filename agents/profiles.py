"""profiles: keep the preferences and contacts tables in step with their compacted topics.

A record that fails validation is logged and skipped (the previous value stays); a tombstone
(null value) deletes the user's entry. A record that is not on its user's murmur2 partition
(a librdkafka producer's CRC32 partitioner, or a keyless send) would be written to a store
that the co-partitioned route never reads, so it is first forwarded to that partition of
`profiles.rekeyed` (logic/rekey.py) and applied there.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import faust
from pydantic import ValidationError

from logic.masking import describe_invalid
from logic.partitioning import partition_of
from logic.rekey import needs_rekey, rekey_headers, rekey_kind
from logic.replay import Source
from streams import metrics

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext

log = logging.getLogger("clarion.profiles")


def install(app: ClarionApp, ctx: StageContext) -> None:
    _settings, topics, guard = ctx.settings, ctx.topics, ctx.guard
    preferences, contacts = ctx.tables.preferences, ctx.tables.contacts

    _KINDS: dict[str, tuple[faust.Table, Any]] = {
        "preferences": (preferences, topics.preferences_codec),
        "contacts": (contacts, topics.contacts_codec),
    }

    def _apply_one(key: bytes, raw: bytes | None, what: str) -> str | None:
        """Apply one record to its table; returns why it was rejected, or None."""
        table, codec = _KINDS[what]
        if raw is None:
            table.pop(key, None)
            return None
        try:
            value = codec.loads(raw)
        except (ValidationError, ValueError) as exc:
            # Never the raw message: pydantic quotes the rejected email/phone/token in it.
            return f"invalid {what} for {key!r}: {describe_invalid(exc)}"
        if value.user_id.encode() != key:
            return f"{what} key {key!r} does not match its user_id"
        table[key] = value
        return None

    async def _apply(stream: faust.StreamT, what: str) -> None:
        async for event in stream.events():
            await guard.guarded(
                f"profiles.{what}", topics.dlq_events, event.message, _one(event, what)
            )

    async def _one(event: faust.EventT, what: str) -> None:
        message = event.message
        key: bytes | None = event.key
        if not key:
            # Compacted topics refuse keyless records, so this is only a safety net.
            await _settle(message, f"{what} record without a key (the user id)", what)
            return
        owner = partition_of(key.decode(errors="replace"), _settings.partitions)
        if needs_rekey(owner, message.partition, already_rekeyed=False):
            await topics.profiles_rekeyed.send(
                key=key,
                value=event.value,
                partition=owner,
                headers=rekey_headers(
                    message.headers, Source(message.topic, message.partition, message.offset), what
                ),
            )
            metrics.profiles_rekeyed.inc()
            return
        await _settle(message, _apply_one(key, event.value, what), what)

    async def _settle(message: faust.types.Message, rejected: str | None, what: str) -> None:
        """A rejected record keeps the previous value in the table and goes to dlq.events with
        its bytes and the reason (no contact point in the reason: see logic/masking)."""
        if rejected is None:
            return
        log.warning(
            "%s (%s[%d]@%d); dead-lettered, the table keeps the previous value",
            rejected,
            message.topic,
            message.partition,
            message.offset,
        )
        await guard.dead_letter_message(
            topics.dlq_events,
            message,
            "invalid_profile",
            ValueError(rejected),
            stage=f"profiles.{what}",
        )

    @app.agent(topics.preferences, name="profiles.preferences", concurrency=1)
    async def apply_preferences(stream: faust.StreamT) -> None:
        await _apply(stream, "preferences")

    @app.agent(topics.contacts, name="profiles.contacts", concurrency=1)
    async def apply_contacts(stream: faust.StreamT) -> None:
        await _apply(stream, "contacts")

    @app.agent(topics.profiles_rekeyed, name="profiles.rekeyed", concurrency=1)
    async def apply_rekeyed(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await guard.guarded(
                "profiles.rekeyed", topics.dlq_events, event.message, _rekeyed(event)
            )

    async def _rekeyed(event: faust.EventT) -> None:
        what = rekey_kind(event.message.headers)
        if not event.key or what not in _KINDS:
            log.warning("profiles.rekeyed record without key or kind: skipped")
            return
        await _settle(event.message, _apply_one(event.key, event.value, what), what)
