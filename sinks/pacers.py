"""The provider sinks' pacers: one token bucket per registered provider (logic/pacing.py),
each at this worker's share of the provider's global rate.

`CLARION_PACE_<P>_PER_S` is the provider's rate for the whole deployment (its quota is
global: FCM's 600k/min is per project, a Twilio sender's MPS per number). A consumer group
paces its part of it (`logic.pacing.group_share`: all of it, or its lanes' part when lanes
are split over groups), and each worker of the group the fraction of the group's partitions
of the provider's delivery topics (`deliveries.<channel>.<served lane>`) that it owns
(`logic.pacing.worker_rate`). Recomputed on every rebalance from Faust's signals: revoked →
0 (a paused pacer holds its sends, so no worker sends on an old share while another already
has a new one), assigned → the new share. The group's rates add up to its part of the
budget at every moment, so the aggregate stays within the quota whatever the assignment.
It is exact when the load is spread over the partitions; a worker whose partitions are idle
leaves its share unused (the aggregate is then below the quota, never above it).

Before its first assignment a worker paces at the group's whole part: it has no partition
and so no record to send then (the in-process stage tests, which never assign, see the
configured rate). With CLARION_PACE_SCOPE=worker every worker paces the whole rate, as
before issue 13, and assignments change nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from logic.pacing import Pacer, group_share, worker_rate
from logic.topic_names import delivery_topic
from schemas.common import Channel, Lane
from sinks.providers import registry
from streams import metrics
from streams.faust_internals import active_partitions
from streams.topic_loader import loaders_of

if TYPE_CHECKING:
    import faust

    from sinks.providers.config import SenderSettings
    from streams.settings import Settings

log = logging.getLogger("clarion.deliver")


class ProviderPacers:
    """One app's pacers, by provider name, kept at the worker's share of each provider's rate."""

    def __init__(self, settings: Settings, providers: SenderSettings) -> None:
        # One pacer per registered provider, at its configured rate: the whole deployment's
        # (scope group) or each worker's.
        self.pacers: dict[str, Pacer] = registry.pacers(providers)
        self.configured = {name: pacer.rate for name, pacer in self.pacers.items()}
        self.channel = {spec.name: spec.channel for spec in providers.specs}
        self.per_group = settings.pace_scope == "group"
        self._app: Any = None  # set by `connect`
        self._owner_changelog: str | None = None
        served = settings.served_lanes
        self.share = group_share(len(served), len(Lane), settings.pace_group_share)
        # The partitions this group's provider sinks read, per channel: every served lane's
        # delivery topic (they all have CLARION_PARTITIONS partitions).
        self._topics: dict[Channel, frozenset[str]] = {
            ch: frozenset(settings.topic(delivery_topic(ch, lane)) for lane in served)
            for ch in Channel
        }
        self._total = settings.partitions * len(served)
        for name, pacer in self.pacers.items():
            # Scope group: the group's part (0 in a group that serves no lane, e.g. a
            # fan-out-only worker, which has no provider sink).
            self._apply(name, pacer, pacer.rate * self.share if self.per_group else pacer.rate)

    def __getitem__(self, provider: str) -> Pacer:
        return self.pacers[provider]

    def connect(self, app: faust.App, owner_changelog: str | None = None) -> None:
        """Follow the app's assignment (Faust's eager rebalancing: a revocation of every
        partition, then the full new assignment). The provider sinks read their delivery
        topics through topic loaders, on the partitions of the table whose changelog is
        `owner_changelog` (`ledger`) this worker owns: those are the partitions counted."""
        self._app, self._owner_changelog = app, owner_changelog
        if self.per_group:
            app.on_partitions_revoked.connect(self._on_revoked)
            app.on_partitions_assigned.connect(self._on_assigned)

    def owned(self, assigned: Iterable[tuple[str, int]]) -> dict[Channel, int]:
        """Per channel, how many of its delivery partitions in this group `assigned` holds
        (Faust TPs, or any (topic, partition) pairs)."""
        counts = dict.fromkeys(Channel, 0)
        for topic, _partition in set(assigned):
            for ch, names in self._topics.items():
                if topic in names:
                    counts[ch] += 1
        return counts

    def assign(self, assigned: Iterable[tuple[str, int]]) -> None:
        """Set every pacer to this worker's share under the assignment `assigned` (the
        worker's whole assignment: other topics' partitions are ignored)."""
        owned = self.owned(assigned)
        for name, pacer in self.pacers.items():
            rate = worker_rate(
                self.configured[name], self.share, owned[self.channel[name]], self._total
            )
            self._apply(name, pacer, rate)
        channels = dict.fromkeys(self.channel.values())  # the providers' channels, in order
        log.info(
            "pacing: owns %s of %d delivery partitions; %s",
            ", ".join(f"{ch.value} {owned[ch]}" for ch in channels),
            self._total,
            ", ".join(f"{name} {p.rate:g}/s" for name, p in self.pacers.items()),
        )

    def revoke(self) -> None:
        """Pause every pacer until the next assignment says what this worker owns."""
        for name, pacer in self.pacers.items():
            self._apply(name, pacer, 0.0)

    def _apply(self, name: str, pacer: Pacer, rate: float) -> None:
        if rate != pacer.rate:
            pacer.set_rate(rate)
        metrics.provider_pace.labels(name).set(rate)

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The sinks' loaders finish their sends in flight at revocation (they receive this
        # signal too, in no set order): a send waiting on a paused pacer would never end.
        # So every pacer keeps its old share until they have.
        await asyncio.gather(*(lo.settled() for lo in loaders_of(self._app) if lo.window))
        self.revoke()

    def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # args[0]: the worker's whole new assignment (standby changelog partitions included).
        # The delivery topics' partitions are those of the owner table's changelog this
        # worker owns actively (the loaders'), plus any delivery topic Faust assigned.
        assigned = {(tp[0], tp[1]) for tp in (args[0] if args else kwargs.get("assigned", ()))}
        if self._owner_changelog is not None:
            owned = active_partitions(self._app, self._owner_changelog)
            names = [name for names in self._topics.values() for name in names]
            assigned |= {(name, p) for name in names for p in owned}
        self.assign(assigned)
