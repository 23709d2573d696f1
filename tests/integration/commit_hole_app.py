"""A one-agent Faust app for test_commit_guard.py, run as `python -m … worker`.

Two agent instances share one partition, so records finish out of order: the record whose
value is `hold` waits until the file HOLE_RELEASE exists, the others finish at once. Each
finished record prints `processed <offset>`. HOLE_GUARD=1 installs Clarion's consumer
(streams/consumer.py); 0 runs Faust's own.

HOLE_DROP (offsets, comma-separated) makes Faust's own getmany drop those records once, after
the client fetched them, as it does with a partition that leaves its active set while a
batch is being handed out (seen after a kill -9 under load: issue 10's failover loss).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import faust

from streams.consumer import ClarionTransport


class HoleApp(faust.App):  # type: ignore[misc]
    def _new_transport(self) -> Any:
        if os.environ["HOLE_GUARD"] == "1":
            return ClarionTransport(self.conf.broker_consumer, self)
        return super()._new_transport()


app = HoleApp(
    os.environ["HOLE_APP_ID"],
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    store="memory://",
    datadir=os.environ["HOLE_DATA_DIR"],
    broker_commit_interval=0.3,
    # As Clarion's workers: a killed member leaves the group in seconds, not Faust's 60 s.
    broker_session_timeout=6,
    broker_heartbeat_interval=2,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
)
topic = app.topic(os.environ["HOLE_TOPIC"], value_type=bytes, value_serializer="raw")
release = Path(os.environ["HOLE_RELEASE"])
_drop = {int(o) for o in os.environ.get("HOLE_DROP", "").split(",") if o}
if _drop:
    from faust.transport import consumer as _faust_consumer

    _handed_on = _faust_consumer.Consumer.getmany

    async def _dropping(self: Any, timeout: float) -> Any:  # noqa: ASYNC109
        async for tp, message in _handed_on(self, timeout):
            if message.offset in _drop:
                _drop.discard(message.offset)
                continue
            yield tp, message

    _faust_consumer.Consumer.getmany = _dropping


@app.agent(topic, concurrency=2)
async def work(stream: Any) -> None:
    async for event in stream.events():
        if event.value == b"hold":
            # Released by the test process creating a file: nothing here to wait on.
            while not release.exists():  # noqa: ASYNC110, ASYNC240
                await asyncio.sleep(0.05)
        print(f"processed {event.message.offset}", flush=True)


if __name__ == "__main__":
    app.main()
