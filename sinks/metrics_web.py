"""GET /metrics: this worker's Prometheus registry (streams/metrics.py), with consumer lag
read from the Faust consumer at scrape time."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web
from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST

from logic.lag import PartitionOffsets
from streams import metrics
from streams.faust_internals import committed_offset
from streams.topic_loader import loaders_of

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext

log = logging.getLogger("clarion.metrics")


def install(app: ClarionApp, ctx: StageContext) -> None:
    """GET /metrics, and the consumer lag it reports read from this app's consumer (the
    registry is the process's: streams/metrics.py)."""

    def _offsets() -> list[PartitionOffsets]:
        """Highwater and committed offset of every partition assigned to this worker: its
        Faust consumer's, and its topic loaders' (the in-app and outbox sinks' delivery
        topics, streams/topic_loader.py)."""
        consumer = app.consumer
        try:
            rows = [
                PartitionOffsets(
                    tp.topic,
                    tp.partition,
                    consumer.highwater(tp),
                    committed_offset(consumer, tp),  # Kafka's "next to read"
                )
                for tp in consumer.assignment()
            ]
        except Exception:  # no Kafka consumer yet (starting) or gone (stopping): no lag to report
            log.debug("consumer offsets unavailable", exc_info=True)
            rows = []
        for loader in loaders_of(app):
            rows.extend(loader.offsets())
        return rows

    metrics.consumer_lag.source = _offsets
    metrics.consumer_lag.prefix = app.settings.topic_prefix

    @app.page("/metrics")
    class Metrics(View):  # type: ignore[misc]
        """Prometheus text exposition of this worker's metrics."""

        async def get(self, request: web.Request) -> web.Response:
            return web.Response(
                body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )
