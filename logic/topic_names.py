"""The names of the per-lane topics, a pure function of the lane (and channel). Here rather
than in streams/catalog.py (which re-exports them) so that logic, e.g. the lag per lane in
logic/lag.py, can map topic names to lanes without importing streams."""

from __future__ import annotations

from schemas.common import Channel, Lane


def lane_topic(lane: Lane) -> str:
    return f"notifications.{lane.value}"


def delivery_topic(channel: Channel, lane: Lane) -> str:
    return f"deliveries.{channel.value}.{lane.value}"
