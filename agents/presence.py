"""presence: keep the presence table in step with the gateways' records, and answer each
connect with the user's inbox (the gateway replays from it, see logic.presence.ReplayCursor).

Co-partitioned with the other user-keyed topics: ONLINE/OFFLINE arrive on the user's
partition; a gateway sends its LEASE to every partition, so each partition's store has a copy.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import faust

from logic.presence import connected, disconnected
from schemas.presence import PresenceEvent, PresenceKind
from tables import keys
from tables import presence as gateway_route
from tables.rows import LeaseRow

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext

log = logging.getLogger("clarion.presence")


def install(app: ClarionApp, ctx: StageContext) -> None:
    topics, inbox, presence = ctx.topics, ctx.tables.inbox, ctx.tables.presence

    # concurrency=1: writes the presence table.
    @app.agent(topics.presence, name="presence", concurrency=1)
    async def apply_presence(stream: faust.StreamT[PresenceEvent]) -> None:
        async for record in stream:
            now = time.time()
            if record.kind is PresenceKind.LEASE:
                expires = record.expires_at.timestamp() if record.expires_at else now
                presence[keys.lease_key(record.gateway_id)] = LeaseRow(record.epoch, expires)
                continue
            if not record.user_id:
                log.warning(
                    "presence %s from %s without a user: skipped", record.kind, record.gateway_id
                )
                continue
            key = keys.user_key(record.user_id)
            state = presence.get(key)
            if record.kind is PresenceKind.ONLINE:
                presence[key] = connected(
                    state, record.gateway_id, record.epoch, gateway_route.leases(ctx), now
                )
                # The snapshot the new connection replays from, sent after the table says
                # online: an item the in-app sink stores from now on is forwarded as well.
                items = inbox.get(key) or []
                await gateway_route.forward(
                    ctx, record.user_id, items, [record.gateway_id], sync=True
                )
            else:
                after = disconnected(
                    state, record.gateway_id, record.epoch, gateway_route.leases(ctx), now
                )
                if after:
                    presence[key] = after
                else:
                    presence.pop(key, None)
