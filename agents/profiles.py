"""profiles: keep the preferences and contacts tables in step with their compacted topics.

A record that fails validation is logged and skipped (the previous value stays); a tombstone
(null value) deletes the user's entry.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from pydantic import ValidationError

from logic.masking import describe_invalid
from streams import topics
from streams.app import app
from tables.state import contacts, preferences

log = logging.getLogger("clarion.profiles")


async def _apply(stream: faust.StreamT, table: faust.Table, codec: Any, what: str) -> None:
    async for event in stream.events():
        key: bytes | None = event.key
        if not key:
            log.warning("%s record without a key at offset %d: skipped", what, event.message.offset)
            continue
        if event.value is None:
            table.pop(key, None)
            continue
        try:
            value = codec.loads(event.value)
        except (ValidationError, ValueError) as exc:
            # Never the raw message: pydantic quotes the rejected email/phone/token in it.
            log.warning("invalid %s for %r: %s", what, key, describe_invalid(exc))
            continue
        if value.user_id.encode() != key:
            log.warning("%s key %r does not match user_id %r: skipped", what, key, value.user_id)
            continue
        table[key] = value


@app.agent(topics.preferences, name="profiles.preferences", concurrency=1)
async def apply_preferences(stream: faust.StreamT) -> None:
    await _apply(stream, preferences, topics.preferences_codec, "preferences")


@app.agent(topics.contacts, name="profiles.contacts", concurrency=1)
async def apply_contacts(stream: faust.StreamT) -> None:
    await _apply(stream, contacts, topics.contacts_codec, "contacts")
