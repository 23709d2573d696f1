"""Contact points and preferences that delivery outcomes change, written back through their
compacted topics (the profiles agent applies them to the tables, like any other update).

Several sends to one user can fail at once. Each update is computed from the table *plus*
what this worker already removed or disabled and has not seen come back through the topic
yet, so two concurrent removals do not overwrite each other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from logic.contacts import with_channel_disabled, without_addresses
from logic.masking import mask_address
from schemas.common import Channel
from tables import keys
from tables.state import TablesAndTopics

log = logging.getLogger("clarion.profiles")


@dataclass
class PendingUpdates:
    """One app's removals and opt-outs sent and not yet seen back through the topic."""

    dead: dict[str, set[str]] = field(default_factory=dict)
    disabled: dict[str, set[Channel]] = field(default_factory=dict)


class UpdateContext(TablesAndTopics, Protocol):
    """What an update needs of a stage's context: tables, topics and the pending changes."""

    @property
    def pending(self) -> PendingUpdates: ...


async def remove_address(ctx: UpdateContext, recipient_id: str, address: str, reason: str) -> None:
    _dead, contacts, topics = ctx.pending.dead, ctx.tables.contacts, ctx.topics
    key = keys.user_key(recipient_id)
    current = contacts.get(key)
    if current is None:
        return
    dead = _dead.setdefault(recipient_id, set())
    dead.add(address)
    updated = without_addresses(current, dead)
    if updated == current:  # the table already has it: nothing pending for this user
        _dead.pop(recipient_id, None)
        return
    log.info(
        "removing %s from %s's contact points: %s", mask_address(address), recipient_id, reason
    )
    await (await topics.contacts.send(key=key, value=topics.contacts_codec.dumps(updated)))


async def disable_channel(
    ctx: UpdateContext, recipient_id: str, channel: Channel, reason: str
) -> None:
    _disabled, preferences, topics = ctx.pending.disabled, ctx.tables.preferences, ctx.topics
    key = keys.user_key(recipient_id)
    current = preferences.get(key)
    pending = _disabled.setdefault(recipient_id, set())
    pending.add(channel)
    updated = current
    for ch in sorted(pending):
        updated = with_channel_disabled(updated, recipient_id, ch)
    if updated == current:
        _disabled.pop(recipient_id, None)
        return
    log.info("opting %s out of %s: %s", recipient_id, channel.value, reason)
    await (await topics.preferences.send(key=key, value=topics.preferences_codec.dumps(updated)))
