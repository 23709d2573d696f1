"""What a provider module declares: one ``SPEC = ProviderSpec(...)``.

A provider is one file (``sinks/providers/<name>.py``) plus one line in
``sinks/providers/registry.PROVIDER_MODULES``: its spec says which channel it serves, which
deliveries of that channel it takes, its settings, its pace, how its sender is built and
how many sends it wants in flight. The
factory, the sinks' pacers and ``ProviderSettings`` are all derived from the registered specs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from schemas.common import Channel
from schemas.notifications import Delivery
from sinks.providers.base import Sender
from sinks.providers.config import SenderSettings

S = TypeVar("S", bound=SenderSettings)


def every_delivery(delivery: Delivery) -> bool:
    return True


@dataclass(frozen=True)
class ProviderSpec(Generic[S]):
    # The provider's label: its pacer, metrics, dead-letter headers and sandbox records.
    name: str
    channel: Channel
    # Its pydantic-settings class (a SenderSettings, so env prefix CLARION_ and the shared
    # send settings); field names carry the provider's name, so the environment variables
    # read CLARION_<FIELD> as they always did. Merged into ProviderSettings by the registry.
    settings: type[S]
    # Whether the settings configure it: an unconfigured provider gets no sender.
    configured: Callable[[S], bool]
    # Sends per second of the whole deployment (CLARION_PACE_<NAME>_PER_S by convention);
    # each worker paces its share of it (sinks/pacers.py).
    pace_per_s: Callable[[S], float]
    # Builds the sender; called only when `configured`.
    build: Callable[[S], Sender]
    # Which deliveries of its channel it takes when the channel has several providers (push:
    # the target's platform). The channel's first registered provider is the default label.
    picks: Callable[[Delivery], bool] = every_delivery
    # Sends its channel's sink should keep in flight per agent when more than
    # CLARION_SINK_CONCURRENCY (a provider that batches needs a batch's worth ready at
    # once: SendGrid's personalizations); None = the sink's setting is enough.
    max_in_flight: Callable[[S], int] | None = None
