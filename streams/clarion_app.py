"""ClarionApp: the faust.App subclass every Clarion worker runs (topic creation before the
consumer subscribes, the commit-guarding consumer, the cluster check of the data dir), and the
install of the patch of Faust's RocksDB revoke (streams/faust_internals.py). The class only:
streams/app.py's `build_app` assembles it."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn

import faust
from faust.exceptions import ConsistencyError

from streams.admin import cluster_id, ensure_topics
from streams.catalog import TopicSpec, all_topics
from streams.consumer import ClarionTransport
from streams.datadir import DataDirMismatch, check_cluster, consistency_message
from streams.faust_internals import install_store_revoke_patch

if TYPE_CHECKING:
    from streams.context import StageContext
    from streams.settings import Settings

log = logging.getLogger("clarion.app")


def _refuse(line: str) -> NoReturn:
    """Stop the process with one line that says what to do (not a traceback)."""
    log.critical(line)  # Faust's logging writes it to stderr
    logging.shutdown()
    os._exit(2)  # before anything is started that would need a clean stop


class ClarionApp(faust.App):  # type: ignore[misc]
    """faust.App that creates Clarion's topics before the consumer subscribes to them."""

    ctx: StageContext  # set by build_app

    def __init__(self, settings: Settings, *, store: str = "rocksdb://") -> None:
        self.settings = settings
        super().__init__(
            settings.app_id,
            broker=[f"kafka://{h.strip()}" for h in settings.bootstrap_servers.split(",")],
            store=store,
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
            # Faust's default linger of 0 sends every record in its own produce request:
            # the worker spent its time in socket writes. A few ms batches them (not on a
            # critical-only worker: see Settings.producer_linger_ms).
            producer_linger=settings.producer_linger_s,
            producer_max_batch_size=256 * 1024,
            # Faust's default 1,000,000 is below what the broker accepts: dead-lettering a
            # larger ingress record failed and crashed the agent (issue 10 item 3).
            producer_max_request_size=settings.dead_letter_max_bytes,
            # A killed worker's partitions (the critical lane's included) move to a live
            # worker once its session expires: Faust's 60 s default stalled them a minute.
            # The heartbeat runs in the consumer's own thread, so a busy event loop does not
            # delay it; at most a third of the session, as Kafka advises.
            broker_session_timeout=settings.broker_session_timeout_s,
            broker_heartbeat_interval=min(
                settings.broker_heartbeat_interval_s, settings.broker_session_timeout_s / 3
            ),
        )

    def _new_transport(self) -> Any:
        # Faust's consumer can commit past a record that was never processed (a rebalance's
        # skipped records, holes before the first commit): Clarion's consumer refuses to.
        return ClarionTransport(self.conf.broker_consumer, self)

    async def on_first_start(self) -> None:
        s = self.settings
        try:
            check_cluster(s.data_dir, await cluster_id(s.bootstrap_servers), s.bootstrap_servers)
        except DataDirMismatch as exc:
            _refuse(str(exc))
        specs = [
            replace(spec, name=s.topic(spec.name)) for spec in all_topics(s.dead_letter_max_bytes)
        ]
        await ensure_topics(
            s.bootstrap_servers,
            specs + self._internal_topics(),
            prefix="",
            partitions=s.partitions,
            replication_factor=s.replication_factor,
        )
        await super().on_first_start()

    def _crash(self, reason: BaseException) -> None:
        # mode marks every service up to the app crashed through here (table recovery
        # raises ConsistencyError when the local tables are ahead of their changelog
        # topics): say which directory to remove instead of a traceback.
        if isinstance(reason, ConsistencyError):
            _refuse(consistency_message(self.settings.data_dir, str(reason)))
        super()._crash(reason)

    def _internal_topics(self) -> list[TopicSpec]:
        """Faust's own topics (table changelogs, the assignor's leader topic). Faust would
        create them too, but without waiting for them to appear in the metadata: on a fresh
        cluster the consumer then subscribes without them ("Ignoring missing topic") and
        the tables never get their partitions. Creating them here, and waiting, avoids that."""
        specs = [TopicSpec(f"{self.conf.id}-__assignor-__leader", partitions=1)]
        for table in self.tables.values():
            topic = table.changelog_topic
            specs.append(
                TopicSpec(
                    topic.get_topic_name(),
                    compacted=True,
                    extra_config=tuple((k, str(v)) for k, v in (topic.config or {}).items()),
                )
            )
        return specs


# Every worker builds its app from this module: the patch is in place before any store opens.
install_store_revoke_patch()
