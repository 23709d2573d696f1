"""Console/file outbox: stands in for a channel whose provider is not configured (no
credentials in the settings), so a bare `clarion worker` still shows every channel's
deliveries. One JSON line each. Configured channels go through sinks/deliver.py."""

from __future__ import annotations

import logging
from typing import IO, TYPE_CHECKING

import faust

from logic.masking import mask_address
from schemas.common import Channel
from schemas.notifications import Delivery, ReceiptStatus
from streams import metrics, receipts

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

    async def _deliver_to_outbox(stream: faust.StreamT[Delivery]) -> None:
        async for delivery in stream:
            out = _outbox()
            out.write(delivery.model_dump_json().encode() + b"\n")
            out.flush()
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
            await receipts.record(ctx, delivery, ReceiptStatus.SENT)

    for _channel in Channel:
        if _channel is Channel.IN_APP or _channel in senders:
            continue
        for _lane in _settings.served_lanes:
            app.agent(
                topics.deliveries[(_channel, _lane)],
                name=f"sink.outbox.{_channel.value}.{_lane.value}",
                concurrency=1,
            )(_deliver_to_outbox)
