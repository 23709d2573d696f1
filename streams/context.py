"""What every stage's `install(app, ctx)` is given: one app's settings, topics, tables and the
services the stages share. Built by streams/app.py's `build_app`, one per app, so two apps in
one process share no state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.digest import WindowIndex
    from agents.positions import Positions
    from logic.render import Renderer
    from logic.rules import Rules
    from schemas.common import Channel
    from sinks.hub import Hub
    from sinks.profile_updates import PendingUpdates
    from sinks.providers.base import Sender
    from streams.app import ClarionApp
    from streams.guard import Guard
    from streams.settings import Settings
    from streams.topics import Topics
    from tables.state import Tables


@dataclass(frozen=True)
class StageContext:
    app: ClarionApp
    settings: Settings
    topics: Topics
    tables: Tables
    guard: Guard  # stage errors and undecodable records -> dead letters; fault injection
    positions: Positions  # processed positions per partition (agents/positions.py)
    windows: WindowIndex  # the digest's open-window index (agents/digest.py)
    rules: Rules  # CLARION_RULES_PATH, loaded once
    renderer: Renderer
    hub: Hub  # this worker's live SSE connections (sinks/inapp.py, sinks/web.py)
    senders: dict[Channel, Sender]  # configured providers (sinks/deliver.py)
    pending: PendingUpdates  # contact/preference changes sent, not yet seen back
