"""Console/file outbox: stands in for a channel whose provider is not configured (no
credentials in the settings), so a bare `clarion worker` still shows every channel's
deliveries. One JSON line each. Configured channels go through sinks/deliver.py."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import IO, TYPE_CHECKING, Any

from aiokafka import ConsumerRecord

from logic.masking import mask_address
from logic.topic_names import outbox_sink_group
from schemas.common import Channel, Lane
from schemas.notifications import Delivery, ReceiptStatus
from streams import metrics, receipts, sink_records
from streams.topic_loader import Apply, TopicLoader, started_with_the_app

if TYPE_CHECKING:
    from sinks.context import SinkContext
    from streams.clarion_app import ClarionApp

log = logging.getLogger("clarion.outbox")


def install(app: ClarionApp, ctx: SinkContext) -> None:
    _settings, topics, senders = ctx.settings, ctx.topics, ctx.senders

    _file: IO[bytes] | None = None

    def _outbox() -> IO[bytes]:
        nonlocal _file
        if _file is None:
            _settings.outbox_path.parent.mkdir(parents=True, exist_ok=True)
            _file = _settings.outbox_path.open("ab")
        return _file

    async def write(delivery: Delivery) -> Awaitable[Any]:
        out = _outbox()
        out.write(delivery.model_dump_json().encode() + b"\n")
        if _settings.outbox_console:
            log.info(
                "%-7s %-8s → %s: %s — %s",
                delivery.channel.value,
                delivery.lane.value,
                mask_address(delivery.target.address),
                delivery.title,
                delivery.body,
            )
        metrics.provider_send(delivery, "outbox", "sent")
        return await receipts.record(ctx, delivery, ReceiptStatus.SENT)

    def applier(lane: Lane) -> Apply:
        stage = f"sink.outbox.{lane.value}"

        async def apply(partition: int, records: Sequence[ConsumerRecord]) -> list[Awaitable[Any]]:
            receipts_sent = await sink_records.deliver_each(ctx, stage, records, write)
            if _file is not None:
                _file.flush()  # one flush per batch: the lines are out before the commit
            return receipts_sent

        return apply

    # One topic loader per served lane for every channel without a provider (no Faust agent:
    # streams/topic_loader.py says why), on the partitions of `ledger` this worker owns (the
    # delivery topics are keyed by recipient, like it).
    for lane in _settings.served_lanes:
        names = [
            topics.deliveries[(channel, lane)].get_topic_name()
            for channel in Channel
            if channel is not Channel.IN_APP and channel not in senders
        ]
        if not names:
            continue
        loader = TopicLoader(
            app,
            topics=names,
            table=ctx.tables.ledger,
            apply=applier(lane),
            group_id=outbox_sink_group(_settings.app_id, lane),
            bootstrap_servers=_settings.bootstrap_servers,
        )
        app.service(started_with_the_app(loader))
