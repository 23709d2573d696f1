"""Consumer lag by lane: which topics belong to a lane, and highwater minus committed.
Pure (no Faust): /metrics sums it per topic at scrape time (streams/metrics.py); the
operator view lists it per partition (streams/admin_views.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from logic.topic_names import delivery_topic, lane_topic
from schemas.common import Channel, Lane


class PartitionOffsets(NamedTuple):
    topic: str
    partition: int
    highwater: int | None  # Kafka's end offset: the next offset to be written
    committed: int | None  # the group's committed offset: the next offset to read


class LaneLag(NamedTuple):
    lane: Lane
    topic: str  # without the topic prefix
    lag: int


def lane_of(topic: str) -> Lane | None:
    """The lane of notifications.<lane> and deliveries.<channel>.<lane>; None otherwise."""
    for lane in Lane:
        if topic == lane_topic(lane):
            return lane
        if any(topic == delivery_topic(channel, lane) for channel in Channel):
            return lane
    return None


def partition_lag(highwater: int | None, committed: int | None) -> int | None:
    """Records the group has not committed yet; None while the highwater is unknown (no
    fetch yet). Both are "next" offsets (Kafka's convention). Faust reports a committed 0 as
    unknown, so unknown counts from 0: an upper bound once retention moved the log start."""
    if highwater is None:
        return None
    return max(0, highwater - (committed or 0))


def lag_by_lane(rows: Iterable[PartitionOffsets], prefix: str = "") -> Iterator[LaneLag]:
    """Lag summed per lane topic over the given partitions, for the lane topics only."""
    totals: dict[tuple[Lane, str], int] = {}
    for row in rows:
        if not row.topic.startswith(prefix):
            continue
        name = row.topic[len(prefix) :]
        lane = lane_of(name)
        if lane is None:
            continue
        lag = partition_lag(row.highwater, row.committed) or 0
        totals[(lane, name)] = totals.get((lane, name), 0) + lag
    for (lane, name), lag in sorted(totals.items()):
        yield LaneLag(lane, name, lag)


def lane_topics(prefix: str = "") -> dict[str, Lane]:
    """topic name -> lane, for each lane topic and the lane's delivery topics."""
    topics = {f"{prefix}{lane_topic(lane)}": lane for lane in Lane}
    for lane in Lane:
        for channel in Channel:
            topics[f"{prefix}{delivery_topic(channel, lane)}"] = lane
    return topics


def by_lane(rows: Iterable[Mapping[str, Any]], topics: Mapping[str, Lane]) -> list[dict[str, Any]]:
    """Partition rows (with `topic`, `partition` and `lag`) grouped by lane: every lane once,
    in lane order, partitions sorted; a lane's total sums the known lags."""
    grouped: dict[Lane, list[Mapping[str, Any]]] = {lane: [] for lane in Lane}
    for row in rows:
        lane = topics.get(row["topic"])
        if lane is not None:
            grouped[lane].append(row)
    return [
        {
            "lane": lane.value,
            "total_lag": sum(r["lag"] or 0 for r in parts),
            "partitions": sorted(parts, key=lambda r: (r["topic"], r["partition"])),
        }
        for lane, parts in grouped.items()
    ]
