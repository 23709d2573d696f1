"""The names of the per-lane topics, a pure function of the lane (and channel). Here rather
than in streams/catalog.py (which re-exports them) so that logic, e.g. the lag per lane in
logic/lag.py, can map topic names to lanes without importing streams."""

from __future__ import annotations

from schemas.common import Channel, Lane


def lane_topic(lane: Lane) -> str:
    return f"notifications.{lane.value}"


def delivery_topic(channel: Channel, lane: Lane) -> str:
    return f"deliveries.{channel.value}.{lane.value}"


# The consumer groups of the topic loaders (streams/topic_loader.py): each commits its
# offsets under its own group, next to the worker's group (the app id). Named here once for
# the loaders and for the tools that read their offsets (benchmarks/throughput.py).
def graph_group(app_id: str) -> str:
    return f"{app_id}-graph"


def in_app_sink_group(app_id: str, lane: Lane) -> str:
    return f"{app_id}-sink-in_app-{lane.value}"


def outbox_sink_group(app_id: str, lane: Lane) -> str:
    return f"{app_id}-sink-outbox-{lane.value}"


def ingest_group(app_id: str, lane: Lane) -> str:
    return f"{app_id}-ingest-{lane.value}"


def rekeyed_ingest_group(app_id: str) -> str:
    return f"{app_id}-ingest-rekeyed"


def provider_sink_group(app_id: str, channel: Channel, lane: Lane) -> str:
    return f"{app_id}-sink-{channel.value}-{lane.value}"
