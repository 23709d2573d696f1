"""The provider registry: the one list of provider modules, and what is derived from it.

Adding a provider is a new ``sinks/providers/<name>.py`` that declares ``SPEC`` (a
``ProviderSpec``) and one line below; its environment variables are its settings class's.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from functools import cache
from typing import Any, cast

from pydantic import create_model

from logic.pacing import Pacer
from schemas.common import Channel
from schemas.notifications import Delivery
from sinks.providers.config import SenderSettings
from sinks.providers.spec import ProviderSpec

# One line per provider. Order matters within a channel: of the providers that take a
# delivery, the first configured one sends it (see `pick`).
PROVIDER_MODULES: tuple[str, ...] = (
    "sinks.providers.fcm",
    "sinks.providers.apns",
    "sinks.providers.sendgrid",
    "sinks.providers.twilio",
    "sinks.providers.webhook",
)


def load_specs(modules: tuple[str, ...] | None = None) -> tuple[ProviderSpec[Any], ...]:
    """The ``SPEC`` of each module (default: ``PROVIDER_MODULES``), in list order."""
    specs: list[ProviderSpec[Any]] = []
    for name in PROVIDER_MODULES if modules is None else modules:
        spec = getattr(importlib.import_module(name), "SPEC", None)
        if not isinstance(spec, ProviderSpec):
            raise TypeError(f"provider module {name} declares no SPEC = ProviderSpec(...)")
        specs.append(spec)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"two providers share a name: {names}")
    return tuple(specs)


def settings_class(modules: tuple[str, ...] | None = None) -> type[SenderSettings]:
    """``ProviderSettings``: one pydantic-settings class with every registered provider's
    fields and validators (each provider's class is a base, so an instance is also each
    provider's settings)."""
    return _settings_class(PROVIDER_MODULES if modules is None else modules)


@cache
def _settings_class(modules: tuple[str, ...]) -> type[SenderSettings]:
    specs = load_specs(modules)
    bases = tuple(dict.fromkeys(s.settings for s in specs)) or (SenderSettings,)
    merged = cast(
        "type[SenderSettings]",
        create_model("ProviderSettings", __base__=bases, __module__=__name__),  # type: ignore[call-overload]
    )
    merged.specs = specs
    return merged


def pacers(cfg: SenderSettings) -> dict[str, Pacer]:
    """One token bucket per registered provider (configured or not: a label is never missing),
    at the provider's configured rate; sinks/pacers.py moves them to the worker's share."""
    return {spec.name: Pacer(spec.pace_per_s(cfg)) for spec in cfg.specs}


def sink_concurrency(cfg: SenderSettings, channel: Channel, default: int) -> int:
    """Sends in flight for `channel`'s sink agents: `default` (CLARION_SINK_CONCURRENCY),
    raised to the largest `max_in_flight` of the channel's configured providers. Raised,
    never lowered: a small batch size must not starve a channel's unbatched sends."""
    wanted = [
        spec.max_in_flight(cfg)
        for spec in cfg.specs
        if spec.channel is channel and spec.max_in_flight is not None and spec.configured(cfg)
    ]
    return max([default, *wanted])


def configured(cfg: SenderSettings) -> frozenset[str]:
    """The names of the registered providers the settings configure."""
    return frozenset(spec.name for spec in cfg.specs if spec.configured(cfg))


def pick(
    specs: tuple[ProviderSpec[Any], ...], delivery: Delivery, configured: Collection[str]
) -> ProviderSpec[Any] | None:
    """The provider that sends the delivery: of its channel's providers that take it, the
    first configured one, else the first (which then answers ``not_configured``); None if
    none takes it. So a second provider of a channel serves it when only it is configured."""
    takers = [s for s in specs if s.channel is delivery.channel and s.picks(delivery)]
    return next((s for s in takers if s.name in configured), takers[0] if takers else None)


def provider_of(
    specs: tuple[ProviderSpec[Any], ...], delivery: Delivery, configured: Collection[str]
) -> str:
    """The provider label of a delivery (pacer, metrics, dead letters): the one ``pick``
    gives, else the channel's first provider (a push target without a platform counts as
    fcm's), else the channel's name (no provider at all)."""
    spec = pick(specs, delivery, configured) or next(
        (s for s in specs if s.channel is delivery.channel), None
    )
    return delivery.channel.value if spec is None else spec.name
