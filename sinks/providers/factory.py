"""Build the senders the settings configure: ``build_senders(ProviderSettings())``."""

from __future__ import annotations

from typing import Any

from schemas.common import Channel
from schemas.notifications import Delivery
from sinks.providers.base import Sender, SendResult, permanent
from sinks.providers.config import SenderSettings
from sinks.providers.registry import pick
from sinks.providers.spec import ProviderSpec


class RoutingSender:
    """A channel served by several providers (push: FCM or APNs by ``target.platform``):
    each delivery goes to the provider ``registry.pick`` gives (``senders``: the configured
    ones, by name)."""

    def __init__(
        self,
        channel: Channel,
        specs: tuple[ProviderSpec[Any], ...],
        senders: dict[str, Sender],
    ) -> None:
        self.provider = channel.value
        self.specs = specs
        self.senders = senders

    async def send(self, delivery: Delivery) -> SendResult:
        spec = pick(self.specs, delivery, self.senders)
        if spec is None:
            names = "|".join(s.name for s in self.specs)
            return permanent(
                f"{self.provider}:no_platform", f"{self.provider} target has no platform ({names})"
            )
        sender = self.senders.get(spec.name)
        if sender is None:
            return permanent(f"{spec.name}:not_configured", f"no {spec.name} credentials set")
        return await sender.send(delivery)

    async def aclose(self) -> None:
        for sender in self.senders.values():
            await sender.aclose()


def build_senders(cfg: SenderSettings) -> dict[Channel, Sender]:
    """One sender per channel with a configured provider; other channels are absent.

    A channel with several registered providers gets a ``RoutingSender`` once one of them is
    configured (a delivery for an unconfigured one is then a PERMANENT
    ``<provider>:not_configured``). Webhook is present when its signing secret
    (CLARION_WEBHOOK_SECRET) is set.
    Call ``aclose()`` on each sender at shutdown.
    """
    by_channel: dict[Channel, list[ProviderSpec[Any]]] = {}
    for spec in cfg.specs:
        by_channel.setdefault(spec.channel, []).append(spec)
    senders: dict[Channel, Sender] = {}
    for channel, specs in by_channel.items():
        built = {s.name: s.build(cfg) for s in specs if s.configured(cfg)}
        if not built:
            continue
        senders[channel] = (
            next(iter(built.values()))
            if len(specs) == 1
            else RoutingSender(channel, tuple(specs), built)
        )
    return senders


async def close_senders(senders: dict[Channel, Sender]) -> None:
    for sender in senders.values():
        await sender.aclose()
