"""Presence (which gateways hold a user's connections, and whether they are still alive),
the hybrid push/pull choice it drives, and what one gateway connection sends.

A user's presence is a map gateway id -> the gateway epoch the user connected under. A
gateway renews one lease per partition (epoch, expires at); a user is online at a gateway
while that gateway's lease is unexpired and of the same epoch. So a gateway that dies takes
its users offline when its lease runs out, and a restarted gateway (new epoch) never
inherits the connections of its previous life, all without one record per user.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from logic.inbox import items_after
from logic.routing import RoutePlan
from schemas.common import Channel, Lane
from schemas.notifications import InboxItem

Presence = dict[str, str]  # gateway id -> epoch
Lease = tuple[str, float]  # (epoch, expires at, unix seconds)
LeaseLookup = Callable[[str], Lease | None]


def is_live(lease: Lease | None, epoch: str, now: float) -> bool:
    return lease is not None and lease[0] == epoch and now < lease[1]


def online_gateways(
    state: Mapping[str, str] | None, lease_of: LeaseLookup, now: float
) -> list[str]:
    """The gateways where the user has a live connection now."""
    if not state:
        return []
    return sorted(g for g, epoch in state.items() if is_live(lease_of(g), epoch, now))


def connected(
    state: Mapping[str, str] | None, gateway_id: str, epoch: str, lease_of: LeaseLookup, now: float
) -> Presence:
    """The state after a connection at `gateway_id`, with dead entries pruned."""
    kept = prune(state, lease_of, now)
    kept[gateway_id] = epoch
    return kept


def disconnected(
    state: Mapping[str, str] | None, gateway_id: str, epoch: str, lease_of: LeaseLookup, now: float
) -> Presence:
    """The state after the user's last connection at `gateway_id` closed. An OFFLINE from
    an older epoch (a late record of a previous life) leaves a newer entry alone."""
    kept = prune(state, lease_of, now)
    if kept.get(gateway_id) == epoch:
        del kept[gateway_id]
    return kept


def prune(state: Mapping[str, str] | None, lease_of: LeaseLookup, now: float) -> Presence:
    """Drop entries of gateways whose lease expired or changed epoch. An entry whose gateway
    has no lease row yet (its first LEASE not applied) is kept: it may become live."""
    kept: Presence = {}
    for gateway, epoch in (state or {}).items():
        lease = lease_of(gateway)
        if lease is None or is_live(lease, epoch, now):
            kept[gateway] = epoch
    return kept


def gateway_partition(gateway_id: str, partitions: int) -> int:
    """The `gateway.deliveries` partition a gateway reads (stable across restarts)."""
    return zlib.crc32(gateway_id.encode()) % partitions


def prefer_in_app(
    plan: RoutePlan, *, online: bool, lane: Lane, required: Iterable[Channel]
) -> RoutePlan:
    """Hybrid push/pull. Online (a live gateway connection): the in-app item reaches the
    client now, so no push. Offline: in-app goes to the inbox and push stays as the wake-up
    signal; the client pulls its inbox when it opens. Critical notifications go out on every
    channel whatever presence says, and a required push is never dropped."""
    if not online or lane is Lane.CRITICAL or Channel.PUSH in set(required):
        return plan
    channels = {d.channel for d in plan.deliveries}
    if Channel.IN_APP not in channels or Channel.PUSH not in channels:
        return plan
    # replace(): the plan's receipts about the notification (notes) stay with it.
    kept = tuple(d for d in plan.deliveries if d.channel is not Channel.PUSH)
    return replace(plan, deliveries=kept)


class ReplayCursor:
    """What one gateway connection writes, and in which order.

    The connection subscribes, announces itself, and waits for the worker's first sync (the
    user's inbox as it was when the worker saw the ONLINE). From that sync it replays what
    came after the client's Last-Event-ID; live items that arrived meanwhile wait, then go
    out once each. A later sync (another device of the user connected) fills any gap: items
    this connection has not written yet. Ids are remembered up to `memory` (more than the
    largest inbox), so nothing is written twice and nothing that arrived live is skipped.
    """

    def __init__(self, last_event_id: str | None, memory: int = 512) -> None:
        self._last_id = last_event_id
        self._memory = memory
        self._known: dict[str, None] | None = None  # insertion-ordered set; None = unsynced
        self._pending: list[InboxItem] = []

    @property
    def synced(self) -> bool:
        return self._known is not None

    def on_sync(self, items: Sequence[InboxItem]) -> list[InboxItem]:
        if self._known is not None:
            return self._fresh(items)
        out = items_after(items, self._last_id)
        self._known = {}
        # Everything in the snapshot is accounted for: replayed now, or older than the
        # client's cursor (or before a fresh client's start).
        self._remember(item.id for item in items)
        pending, self._pending = self._pending, []
        replayed = {item.id for item in out}
        out += [item for item in pending if item.id not in replayed]
        self._remember(item.id for item in pending)
        return _unique(out)

    def on_live(self, items: Sequence[InboxItem]) -> list[InboxItem]:
        if self._known is None:
            # Bounded: the oldest of a long wait are in the inbox and come with the sync.
            self._pending = [*self._pending, *items][-self._memory :]
            return []
        return self._fresh(items)

    def give_up_waiting(self) -> list[InboxItem]:
        """No sync came (no worker up): stream live items from now on, without a replay."""
        return self.on_sync([]) if self._known is None else []

    def _fresh(self, items: Sequence[InboxItem]) -> list[InboxItem]:
        assert self._known is not None
        out = [item for item in items if item.id not in self._known]
        self._remember(item.id for item in out)
        return _unique(out)

    def _remember(self, ids: Iterable[str]) -> None:
        assert self._known is not None
        for item_id in ids:
            self._known[item_id] = None
        while len(self._known) > self._memory:
            del self._known[next(iter(self._known))]


def _unique(items: list[InboxItem]) -> list[InboxItem]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item.id not in seen:
            seen.add(item.id)
            out.append(item)
    return out
