"""Worker side of the gateway role: read the presence table, and hand in-app items to the
gateways where the user is connected (through `gateway.deliveries`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import faust

from logic.presence import Lease, Presence, gateway_partition, online_gateways
from schemas.notifications import InboxItem
from schemas.presence import GatewayPush
from streams import catalog
from tables import changelog, keys
from tables.rows import LeaseRow

if TYPE_CHECKING:
    from tables.state import TablesAndTopics


def lease_of(ctx: TablesAndTopics, gateway_id: str) -> Lease | None:
    # Every partition holds its own copy of each lease row (the gateway sends its LEASE to
    # each one), so the lookup reads the store of the partition being processed.
    row = changelog.get(ctx.tables.presence, keys.lease_key(gateway_id))
    return (row.epoch, row.expires_at) if isinstance(row, LeaseRow) else None


def leases(ctx: TablesAndTopics) -> Callable[[str], Lease | None]:
    """lease_of for one app, as logic.presence takes it."""
    return lambda gateway_id: lease_of(ctx, gateway_id)


def state_of(ctx: TablesAndTopics, user_id: str) -> Presence:
    row = changelog.get(ctx.tables.presence, keys.user_key(user_id))
    return dict(row) if isinstance(row, dict) else {}


def gateways_of(ctx: TablesAndTopics, user_id: str, now: float) -> list[str]:
    """Gateways with a live connection of the user (read in the user's partition)."""
    return online_gateways(state_of(ctx, user_id), leases(ctx), now)


def record_time(default: float) -> float:
    """When the record being processed was produced (never later than `default`, the wall
    clock). A worker that is behind judges leases at the time of the record, not now:
    Faust's one fetch loop stalls every stream while one is backed up, presence included,
    so the lease renewals it has not read yet would otherwise look expired."""
    event = faust.current_event()
    if event is None:
        return default
    return min(default, float(event.message.timestamp))


async def forward(
    ctx: TablesAndTopics,
    user_id: str,
    items: Sequence[InboxItem],
    gateways: Sequence[str],
    *,
    sync: bool = False,
) -> list[Awaitable[Any]]:
    """Send the items to each gateway's partition; return the send futures."""
    push = GatewayPush(user_id=user_id, items=list(items), sync=sync)
    return [
        await ctx.topics.gateway_deliveries.send(
            key=user_id.encode(),
            value=push,
            partition=gateway_partition(gateway, catalog.GATEWAY_PARTITIONS),
        )
        for gateway in gateways
    ]
