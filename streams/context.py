"""What every stage's `install(app, ctx)` is given: one app's settings, topics, tables and the
services the stages share. Built by streams/app.py's `build_app`, one per app, so two apps in
one process share no state. The sinks get a SinkContext (sinks/context.py): this plus
the services only they use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from logic.render import Renderer
    from logic.rules import Rules
    from streams.clarion_app import ClarionApp
    from streams.guard import Guard
    from streams.in_place import InPlaceSinks
    from streams.positions import Positions
    from streams.settings import Settings
    from streams.topics import Topics
    from tables.profile_updates import PendingUpdates
    from tables.state import Tables
    from tables.window_index import WindowIndex


@dataclass(frozen=True)
class StageContext:
    app: ClarionApp
    settings: Settings
    topics: Topics
    tables: Tables
    guard: Guard  # stage errors and undecodable records -> dead letters; fault injection
    positions: Positions  # processed positions per partition (streams/positions.py)
    windows: WindowIndex  # the digest's open-window index (tables/window_index.py)
    rules: Rules  # CLARION_RULES_PATH, loaded once
    renderer: Renderer
    pending: PendingUpdates  # contact/preference changes sent, not yet seen back
    in_place: InPlaceSinks  # deliveries the sinks make inside the stage that plans them
