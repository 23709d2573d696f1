"""What the sinks' `install(app, ctx)` is given: the stage context plus the services only the
sinks use (live SSE connections, the provider senders). Kept here so that streams/, below the
sinks, never names a sink's type."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.common import Channel
from sinks.hub import Hub
from sinks.pacers import ProviderPacers
from sinks.providers.base import Sender
from sinks.providers.config import SenderSettings
from streams.context import StageContext


@dataclass(frozen=True)
class SinkContext(StageContext):
    hub: Hub  # this worker's live SSE connections (sinks/inapp.py, sinks/inapp_web.py)
    senders: dict[Channel, Sender]  # configured providers (sinks/deliver.py, sinks/outbox.py)
    # The settings they were built from (ProviderSettings: the registered providers' specs,
    # their pacing).
    providers: SenderSettings
    # One pacer per provider, at this worker's share of its global rate (sinks/pacers.py).
    pacers: ProviderPacers
