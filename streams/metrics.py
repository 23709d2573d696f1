"""Every Prometheus metric Clarion exports, in one place (no Faust import).

Each worker process has its own registry, served at GET /metrics by sinks/metrics_web.py.
Counters count what *this process* did since it started; Prometheus sums the workers.
Agents increment with one-line calls; consumer lag is computed when scraped
(`LagCollector`, fed by the web module from the Faust consumer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from logic.lag import LaneLag, PartitionOffsets, lag_by_lane
from schemas.common import Category, Channel, Lane
from schemas.notifications import Delivery, Receipt, ReceiptStatus

# The *_created series (one per labelled child) double the exposition for no dashboard use.
disable_created_metrics()
registry = CollectorRegistry()
ProcessCollector(registry=registry)
PlatformCollector(registry=registry)
GCCollector(registry=registry)

# Seconds from the event's occurred_at to the provider accepting the send: critical paths
# are sub-second, digests wait out their window (30-60 s), retries back off for minutes.
LATENCY_BUCKETS = (
    *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    *(30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)

# -- ingest --------------------------------------------------------------------------------
events_in = Counter(
    "clarion_events_in",
    "Valid events accepted by ingest (after dedupe), by event type.",
    ["type"],
    registry=registry,
)
events_duplicate = Counter(
    "clarion_events_duplicate",
    "Events dropped by ingest because their event_id was already seen at another offset.",
    ["type"],
    registry=registry,
)
events_rekeyed = Counter(
    "clarion_events_rekeyed",
    "Ingress records found off their recipient's partition (a foreign producer's partitioner)"
    " and forwarded to it through events.rekeyed.",
    registry=registry,
)
profiles_rekeyed = Counter(
    "clarion_profiles_rekeyed",
    "Preference and contact records found off their user's partition and forwarded to it"
    " through profiles.rekeyed.",
    registry=registry,
)
events_dead_lettered = Counter(
    "clarion_events_dead_lettered",
    "Ingress messages rejected to dlq.events, by reason (clarion.dlq.reason header).",
    ["reason"],
    registry=registry,
)

# -- route / emit / digest / escalate ------------------------------------------------------
notifications = Counter(
    "clarion_notifications",
    "Notifications handed to a channel: records put on deliveries.<channel>.<lane> by "
    "route, digest and escalate (one per target).",
    ["lane", "channel"],
    registry=registry,
)
notifications_dropped = Counter(
    "clarion_notifications_dropped",
    "Notifications that produced no delivery, by lane, receipt status "
    "(expired, throttled, suppressed) and reason.",
    ["lane", "status", "reason"],
    registry=registry,
)
notifications_degraded = Counter(
    "clarion_notifications_degraded",
    "Notifications sent with fallback text because their template failed, by lane and "
    "reason (logic/render.py; the worker log says which template and why).",
    ["lane", "reason"],
    registry=registry,
)
digest_gathered = Counter(
    "clarion_digest_gathered",
    "Notifications folded into an aggregation window, by lane.",
    ["lane"],
    registry=registry,
)
digest_flushed = Counter(
    "clarion_digest_flushed",
    "Aggregation windows sent out as one notification, by lane.",
    ["lane"],
    registry=registry,
)
digest_flushed_events = Counter(
    "clarion_digest_flushed_events",
    "Notifications the flushed aggregation windows stood for (sum of their counts), by lane.",
    ["lane"],
    registry=registry,
)
digest_ratio = Gauge(
    "clarion_digest_aggregation_ratio",
    "Notifications per flushed window since this worker started (flushed_events/flushed).",
    ["lane"],
    registry=registry,
)
escalation_steps = Counter(
    "clarion_escalation_steps",
    "Due escalation steps of critical notifications: sent (not confirmed) or stopped (confirmed).",
    ["outcome"],
    registry=registry,
)

# -- delivery ------------------------------------------------------------------------------
delivery_outcomes = Counter(
    "clarion_delivery_outcomes",
    "Delivery receipts written, by lane, channel and status (sent, delivered, throttled, "
    "expired, retrying, failed, dead_lettered, skipped, escalated).",
    ["lane", "channel", "status"],
    registry=registry,
)
provider_sends = Counter(
    "clarion_provider_sends",
    "Send attempts to a provider (outbox = console stand-in), by outcome "
    "(sent, transient, permanent; expired = refused before the send).",
    ["provider", "channel", "lane", "outcome"],
    registry=registry,
)
delivery_retries = Counter(
    "clarion_delivery_retries",
    "Transient failures scheduled for another try: via the deliveries.retry topic, or in "
    "place (channels with per-target order).",
    ["lane", "channel", "via"],
    registry=registry,
)
retries_republished = Counter(
    "clarion_retries_republished",
    "Retries put back on their delivery topic by the retry agent when due.",
    ["lane", "channel"],
    registry=registry,
)
deliveries_dead_lettered = Counter(
    "clarion_deliveries_dead_lettered",
    "Deliveries written to dlq.deliveries: permanent provider errors (status=failed) and "
    "exhausted retries (status=dead_lettered).",
    ["lane", "channel", "provider", "status"],
    registry=registry,
)
provider_pace = Gauge(
    "clarion_provider_pace_per_s",
    "Sends per second this worker paces a provider at: its share of the provider's global "
    "CLARION_PACE_<P>_PER_S, by the delivery partitions it owns (0: it owns none, e.g. "
    "during a rebalance). The group's workers add up to the provider's budget.",
    ["provider"],
    registry=registry,
)
topic_loader_records = Counter(
    "clarion_topic_loader_records",
    "Records a topic loader applied to its table (streams/topic_loader.py: `follows` -> "
    "`followers`), by source topic.",
    ["topic"],
    registry=registry,
)
topic_loader_lag = Gauge(
    "clarion_topic_loader_lag",
    "Records of a topic loader's owned partitions not yet applied to its table (high "
    "watermark - next offset, summed over the partitions it has read from), by source topic. "
    "Not in clarion_consumer_lag: a loader is not part of the worker's consumer group.",
    ["topic"],
    registry=registry,
)
delivery_latency = Histogram(
    "clarion_delivery_latency_seconds",
    "Seconds from the event's occurred_at to the provider accepting the send (in-app: to "
    "the item entering the inbox), by lane and channel. Digests include their window.",
    ["lane", "channel"],
    buckets=LATENCY_BUCKETS,
    registry=registry,
)

# Known label values start at 0, so rate() and increase() see the first increment.
for _category in Category:
    events_in.labels(_category.value)
for _lane in Lane:
    for _channel in Channel:
        notifications.labels(_lane.value, _channel.value)
        delivery_latency.labels(_lane.value, _channel.value)


# -- one-line helpers for the call sites ----------------------------------------------------
# `labels()` takes a lock and rebuilds its key on every call (several µs); the hot paths
# (per event, per delivery) look their child up here instead. Label values are bounded sets.
_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}


def child(metric: MetricWrapperBase, *labels: str) -> Any:
    """`metric.labels(*labels)`, cached."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def inc(counter: Counter, *labels: str) -> None:
    child(counter, *labels).inc()


def notification_dropped(receipt: Receipt) -> None:
    lane = receipt.lane.value if receipt.lane is not None else ""
    inc(notifications_dropped, lane, receipt.status.value, receipt.reason or "")


def notification_degraded(receipt: Receipt) -> None:
    lane = receipt.lane.value if receipt.lane is not None else ""
    inc(notifications_degraded, lane, receipt.reason or "")


def delivery_planned(delivery: Delivery) -> None:
    inc(notifications, delivery.lane.value, delivery.channel.value)


def receipt_written(receipt: Receipt) -> None:
    """A delivery's receipt (one that names a channel): `clarion_delivery_outcomes_total`.
    Provider feedback names no lane: its receipts count with lane ""."""
    lane = receipt.lane.value if receipt.lane is not None else ""
    channel = receipt.channel.value if receipt.channel is not None else ""
    inc(delivery_outcomes, lane, channel, receipt.status.value)


_DROPPED = frozenset({ReceiptStatus.EXPIRED, ReceiptStatus.SUPPRESSED, ReceiptStatus.THROTTLED})


def receipt_sent(receipt: Receipt) -> None:
    """Count a receipt by what it is about (streams/receipts.send, the one writer): a
    delivery's outcome, a notification dropped before any delivery, or one sent degraded.
    A client's `seen` / `read` is not counted."""
    if receipt.channel is not None:
        receipt_written(receipt)
    elif receipt.status is ReceiptStatus.DEGRADED:
        notification_degraded(receipt)
    elif receipt.status in _DROPPED:
        notification_dropped(receipt)


_flushed: dict[str, tuple[int, int]] = {}  # lane -> (windows, notifications): the gauge's source


def digest_window_flushed(lane: Lane, count: int) -> None:
    windows, events = _flushed.get(lane.value, (0, 0))
    _flushed[lane.value] = (windows + 1, events + count)
    digest_flushed.labels(lane.value).inc()
    digest_flushed_events.labels(lane.value).inc(count)
    digest_ratio.labels(lane.value).set((events + count) / (windows + 1))


def latency_s(occurred_at: datetime, now: datetime) -> float:
    """Never negative: a producer's clock ahead of ours is not a negative latency."""
    return max(0.0, (now - occurred_at).total_seconds())


def delivered(delivery: Delivery) -> None:
    """The channel accepted the delivery: observe its end-to-end latency."""
    seconds = latency_s(delivery.occurred_at, datetime.now(UTC))
    child(delivery_latency, delivery.lane.value, delivery.channel.value).observe(seconds)


def provider_send(
    delivery: Delivery, provider: str, outcome: str, reason: str | None = None
) -> None:
    """One send attempt's outcome; an accepted send also records the latency. A delivery
    the sender refused as expired never reached the provider: outcome "expired"."""
    if reason == "expired":
        outcome = "expired"
    inc(provider_sends, provider, delivery.channel.value, delivery.lane.value, outcome)
    if outcome == "sent":
        delivered(delivery)


def retry_scheduled(delivery: Delivery, via: str) -> None:
    inc(delivery_retries, delivery.lane.value, delivery.channel.value, via)


def delivery_dead_lettered(receipt: Receipt, provider: str) -> None:
    """A delivery written to dlq.deliveries, by its receipt (from a sink or from provider
    feedback: streams/deadletter.delivery). The receipt itself counts in delivery_outcomes."""
    lane = receipt.lane.value if receipt.lane is not None else ""
    channel = receipt.channel.value if receipt.channel is not None else ""
    inc(deliveries_dead_lettered, lane, channel, provider, receipt.status.value)


# -- consumer lag, computed at scrape time ---------------------------------------------------
class LagCollector(Collector):
    """`clarion_consumer_lag{lane,topic}`: records on this worker's assigned partitions of
    the lane and delivery topics not yet committed (highwater - committed), summed per
    topic. `source` reads the consumer; until one is set the family is empty."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[PartitionOffsets]] | None = None
        self.prefix = ""

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "clarion_consumer_lag",
            "Records not yet processed and committed on this worker's assigned partitions "
            "of notifications.<lane> and deliveries.<channel>.<lane>, by lane and topic.",
            labels=["lane", "topic"],
        )

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        rows: Iterable[PartitionOffsets] = self.source() if self.source is not None else ()
        lag: LaneLag
        for lag in lag_by_lane(rows, self.prefix):
            family.add_metric([lag.lane.value, lag.topic], lag.lag)
        yield family


consumer_lag = LagCollector()
registry.register(consumer_lag)


def exposition() -> bytes:
    """The registry in Prometheus' text format (what GET /metrics returns)."""
    return generate_latest(registry)
