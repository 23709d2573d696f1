"""The Faust ceiling: a bare Faust app whose one agent copies every record of one topic to
another, bytes in and bytes out, with Clarion's producer settings (5 ms linger unless
FAUST_HOP_LINGER_MS says otherwise, the same batch size) and nothing else. The throughput
and latency benchmarks run it beside Clarion on the same broker, so "Clarion ÷ bare Faust"
says how many Faust hops' worth of work (or waiting) an event costs.

It runs on the worker's event loop (`CLARION_EVENT_LOOP`, uvloop by default; see
streams/cli.use_loop), so the ratio compares the work, not the loops.

Run as a worker by the benchmark (not by hand):

    FAUST_HOP_SRC=… FAUST_HOP_DST=… KAFKA_BOOTSTRAP_SERVERS=… FAUST_HOP_DATA=… \
        python -m benchmarks.faust_hop worker -l info
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ.get("FAUST_HOP_APP_ID", "faust-hop"),
    broker=f"kafka://{os.environ.get('KAFKA_BOOTSTRAP_SERVERS', 'localhost:9092')}",
    value_serializer="raw",
    key_serializer="raw",
    datadir=os.environ.get("FAUST_HOP_DATA", "var/faust-hop"),
    web_enabled=False,
    topic_allow_declare=False,
    topic_disable_leader=True,
    producer_linger=float(os.environ.get("FAUST_HOP_LINGER_MS", "5")) / 1000.0,
    producer_max_batch_size=256 * 1024,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(os.environ.get("FAUST_HOP_SRC", "hop.in"), value_serializer="raw")
sink = app.topic(os.environ.get("FAUST_HOP_DST", "hop.out"), value_serializer="raw")


@app.agent(source)
async def hop(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)


if __name__ == "__main__":
    from streams.cli import use_loop

    use_loop(os.environ.get("CLARION_EVENT_LOOP", "uvloop"))
    app.main()
