"""The assembly point: `build_app(settings)` makes one Clarion worker app (topics, tables,
then every stage's `install(app, ctx)`). `clarion worker` ≡ `faust -A streams.app worker`:
the module's `app` attribute is built from the environment's settings on first access."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams.clarion_app import ClarionApp
from streams.settings import Settings, get_settings

if TYPE_CHECKING:
    from sinks.providers.config import SenderSettings

__all__ = ["ClarionApp", "build_app"]


def build_app(
    settings: Settings,
    *,
    store: str = "rocksdb://",
    providers: SenderSettings | None = None,
) -> ClarionApp:
    """A new app with Clarion's topics, tables and every stage installed. Nothing is shared
    with another app built in the same process; nothing connects to Kafka until it starts.

    `store` is the tables' Faust store URL. Workers use RocksDB (the default); the in-process
    stage tests (tests/stages/) pass "memory://", which has no files and no RocksDB-only
    features (TTL, the fan-out's range scans in tables/scan.py). `providers` configures the
    senders; by default they are read from the environment (CLARION_* provider settings)."""
    from agents import (
        confirm,
        digest,
        escalate,
        fanout,
        feedback,
        graph,
        ingest,
        presence,
        profiles,
        retry,
        route,
    )
    from logic.render import default_renderer
    from logic.rules import load_rules
    from sinks import (
        deliver,
        health,
        inapp,
        inapp_web,
        inbox_page,
        metrics_web,
        outbox,
        provider_events,
    )
    from sinks.context import SinkContext
    from sinks.hub import Hub
    from sinks.pacers import ProviderPacers
    from sinks.providers.factory import build_senders
    from sinks.providers.registry import settings_class
    from streams import admin_views, commands
    from streams.guard import Guard
    from streams.in_place import InPlaceSinks
    from streams.positions import Positions
    from streams.topics import Topics
    from tables.profile_updates import PendingUpdates
    from tables.state import Tables
    from tables.window_index import WindowIndex

    if providers is None:
        providers = settings_class()()
    app = ClarionApp(settings, store=store)
    guard = Guard(settings.fault_injection, settings.dead_letter_max_bytes)
    topics = Topics(app, settings, guard)
    tables = Tables(app, settings)
    positions = Positions(app)
    # One context for every stage; the sinks' type adds their own services (hub, senders).
    ctx = SinkContext(
        app=app,
        settings=settings,
        topics=topics,
        tables=tables,
        guard=guard,
        positions=positions,
        windows=WindowIndex(app, settings, topics, tables.digests, positions),
        rules=load_rules(settings.rules_path),
        renderer=default_renderer(),
        hub=Hub(),
        senders=build_senders(providers),
        providers=providers,
        pacers=ProviderPacers(settings, providers),
        pending=PendingUpdates(),
        in_place=InPlaceSinks(),
    )
    app.ctx = ctx
    # The order the modules used to be imported in (agents register in this order).
    for stage in (
        escalate,
        confirm,
        fanout,
        feedback,
        ingest,
        graph,
        presence,
        profiles,
        retry,
        digest,
        route,
        deliver,
        inapp,
        outbox,
        inbox_page,
        metrics_web,
        inapp_web,
        provider_events,
        health,
        admin_views,
    ):
        stage.install(app, ctx)
    del commands  # imported for its side effect: `clarion token` … on Faust's CLI
    return app


_built: ClarionApp | None = None


def __getattr__(name: str) -> Any:
    """`streams.app.app`: the worker's app, built once from the environment (get_settings)
    when first asked for — by `faust -A streams.app` or `clarion worker` — and not on import,
    so the commands that need no worker (streams/cli.py) never build it."""
    global _built
    if name == "app":
        if _built is None:
            _built = build_app(get_settings())
        return _built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
