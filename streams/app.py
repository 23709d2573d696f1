"""The faust.App. `clarion worker` ≡ `faust -A streams.app worker`."""

from __future__ import annotations

import faust

from streams.admin import ensure_topics
from streams.catalog import all_topics
from streams.settings import Settings, get_settings


class ClarionApp(faust.App):  # type: ignore[misc]
    """faust.App that creates Clarion's topics before the consumer subscribes to them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__(
            settings.app_id,
            broker=[f"kafka://{h.strip()}" for h in settings.bootstrap_servers.split(",")],
            store="rocksdb://",
            datadir=str(settings.data_dir),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            consumer_auto_offset_reset="earliest",
            web_enabled=True,
            web_bind=settings.web_host,
            web_host=settings.web_host,
            web_port=settings.web_port,
            canonical_url=settings.web_advertised_url
            or f"http://{settings.web_host}:{settings.web_port}",
            # The built-in /table/ view would expose contact points: Clarion serves its own.
            web_tables_enabled=False,
            # Clarion creates its topics explicitly (streams/admin.py); never by accident.
            topic_allow_declare=True,
        )

    async def on_first_start(self) -> None:
        s = self.settings
        await ensure_topics(
            s.bootstrap_servers,
            all_topics(),
            prefix=s.topic_prefix,
            partitions=s.partitions,
            replication_factor=s.replication_factor,
        )
        await super().on_first_start()


app = ClarionApp(get_settings())

# Register tables, agents, sinks and views on the app (they import `app` from here, so
# these imports come last).
import agents.ingest  # noqa: E402
import agents.profiles  # noqa: E402
import agents.route  # noqa: E402, F401
import sinks.inapp  # noqa: E402
import sinks.outbox  # noqa: E402
import sinks.web  # noqa: E402, F401
import streams.commands  # noqa: E402, F401
