"""The metrics module (no Faust): lag per lane, the helpers the agents call, the
exposition, and the Grafana dashboard's queries against the registry."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from logic.lag import PartitionOffsets, lag_by_lane, lane_of
from schemas.common import Category, Channel, Lane
from schemas.notifications import Delivery, Receipt, ReceiptStatus, Target
from streams import metrics

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "clarion-dashboard.json"


def sample(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def delivery(
    lane: Lane = Lane.HIGH, channel: Channel = Channel.PUSH, age_s: float = 2.0
) -> Delivery:
    now = datetime.now(UTC)
    return Delivery(
        delivery_id="d1",
        notification_id="n1",
        recipient_id="alice",
        category=Category.MESSAGE,
        lane=lane,
        channel=channel,
        target=Target(address="tok", platform="fcm"),
        title="t",
        body="b",
        occurred_at=now - timedelta(seconds=age_s),
        created_at=now,
    )


# -- lag ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "lane"),
    [
        ("notifications.critical", Lane.CRITICAL),
        ("notifications.bulk", Lane.BULK),
        ("deliveries.push.social", Lane.SOCIAL),
        ("deliveries.in_app.high", Lane.HIGH),
        ("deliveries.retry", None),
        ("notifications.urgent", None),
        ("deliveries.pigeon.high", None),
        ("events.social", None),
        ("receipts", None),
    ],
)
def test_lane_of_knows_only_lane_and_delivery_topics(topic: str, lane: Lane | None) -> None:
    assert lane_of(topic) is lane


def test_lag_sums_partitions_per_topic_and_skips_other_topics_and_prefixes() -> None:
    rows = [
        PartitionOffsets("t1.notifications.bulk", 0, 100, 40),
        PartitionOffsets("t1.notifications.bulk", 1, 10, 10),
        PartitionOffsets("t1.notifications.bulk", 2, 7, None),  # never committed: from 0
        PartitionOffsets("t1.deliveries.email.bulk", 0, 5, 3),
        PartitionOffsets("t1.deliveries.push.critical", 3, 9, 12),  # committed ahead: 0
        PartitionOffsets("t1.notifications.high", 0, None, 2),  # highwater unknown: 0
        PartitionOffsets("t1.events.social", 0, 500, 0),  # not a lane topic
        PartitionOffsets("t2.notifications.bulk", 0, 999, 0),  # another app's prefix
        PartitionOffsets("t1-clarion-digests-changelog", 0, 50, 0),
    ]
    got = {(lag.lane, lag.topic): lag.lag for lag in lag_by_lane(rows, "t1.")}
    assert got == {
        (Lane.BULK, "notifications.bulk"): 67,
        (Lane.BULK, "deliveries.email.bulk"): 2,
        (Lane.CRITICAL, "deliveries.push.critical"): 0,
        (Lane.HIGH, "notifications.high"): 0,
    }


def test_lag_collector_exposes_what_its_source_reports() -> None:
    collector = metrics.consumer_lag
    saved = collector.source, collector.prefix
    collector.source = lambda: [
        PartitionOffsets("p.notifications.social", 0, 30, 10),
        PartitionOffsets("p.notifications.social", 1, 5, 0),
        PartitionOffsets("p.deliveries.sms.critical", 0, 4, 1),
    ]
    collector.prefix = "p."
    try:
        assert sample("clarion_consumer_lag", lane="social", topic="notifications.social") == 25
        assert sample("clarion_consumer_lag", lane="critical", topic="deliveries.sms.critical") == 3
    finally:
        collector.source, collector.prefix = saved


# -- helpers the agents call -------------------------------------------------------------


def test_latency_is_never_negative() -> None:
    now = datetime.now(UTC)
    assert metrics.latency_s(now - timedelta(seconds=1.5), now) == 1.5
    assert metrics.latency_s(now + timedelta(seconds=30), now) == 0.0  # producer clock ahead


def test_accepted_send_counts_the_outcome_and_observes_latency() -> None:
    labels = {"lane": "critical", "channel": "sms"}
    count = sample("clarion_delivery_latency_seconds_count", **labels)
    under_1s = sample("clarion_delivery_latency_seconds_bucket", le="1.0", **labels)
    under_5s = sample("clarion_delivery_latency_seconds_bucket", le="5.0", **labels)
    sent = {"provider": "twilio", "outcome": "sent", **labels}
    before = sample("clarion_provider_sends_total", **sent)

    metrics.provider_send(delivery(Lane.CRITICAL, Channel.SMS, age_s=2.0), "twilio", "sent")

    assert sample("clarion_provider_sends_total", **sent) == before + 1
    assert sample("clarion_delivery_latency_seconds_count", **labels) == count + 1
    assert sample("clarion_delivery_latency_seconds_bucket", le="1.0", **labels) == under_1s
    assert sample("clarion_delivery_latency_seconds_bucket", le="5.0", **labels) == under_5s + 1


def test_expired_and_failed_sends_observe_no_latency() -> None:
    labels = {"lane": "bulk", "channel": "email"}
    count = sample("clarion_delivery_latency_seconds_count", **labels)
    d = delivery(Lane.BULK, Channel.EMAIL)
    metrics.provider_send(d, "sendgrid", "permanent", "expired")
    metrics.provider_send(d, "sendgrid", "transient", "http_503")
    assert sample("clarion_delivery_latency_seconds_count", **labels) == count
    assert sample("clarion_provider_sends_total", provider="sendgrid", outcome="expired", **labels)
    assert not sample(
        "clarion_provider_sends_total", provider="sendgrid", outcome="permanent", **labels
    )


def test_aggregation_ratio_is_notifications_per_flushed_window() -> None:
    lane = Lane.SOCIAL
    windows = sample("clarion_digest_flushed_total", lane="social")
    events = sample("clarion_digest_flushed_events_total", lane="social")
    metrics.digest_window_flushed(lane, 5)
    metrics.digest_window_flushed(lane, 1)
    assert sample("clarion_digest_flushed_total", lane="social") == windows + 2
    assert sample("clarion_digest_flushed_events_total", lane="social") == events + 6
    ratio = sample("clarion_digest_aggregation_ratio", lane="social")
    assert ratio == pytest.approx((events + 6) / (windows + 2))


def test_dropped_notifications_and_receipts_are_counted_by_status() -> None:
    at = datetime.now(UTC)
    dropped = Receipt(
        notification_id="n",
        recipient_id="u",
        lane=Lane.BULK,
        status=ReceiptStatus.EXPIRED,
        at=at,
        reason="ttl_elapsed",
    )
    labels = {"lane": "bulk", "status": "expired", "reason": "ttl_elapsed"}
    before = sample("clarion_notifications_dropped_total", **labels)
    metrics.notification_dropped(dropped)
    assert sample("clarion_notifications_dropped_total", **labels) == before + 1

    throttled = dropped.model_copy(
        update={"status": ReceiptStatus.THROTTLED, "channel": Channel.PUSH}
    )
    out = {"lane": "bulk", "channel": "push", "status": "throttled"}
    before = sample("clarion_delivery_outcomes_total", **out)
    metrics.receipt_written(throttled)
    assert sample("clarion_delivery_outcomes_total", **out) == before + 1


# -- exposition and dashboard -------------------------------------------------------------


def test_exposition_parses_and_every_clarion_metric_has_help() -> None:
    families = list(text_string_to_metric_families(metrics.exposition().decode()))
    clarion = {f.name: f for f in families if f.name.startswith("clarion_")}
    assert "clarion_events_in" in clarion
    assert "clarion_delivery_latency_seconds" in clarion
    assert all(f.documentation for f in clarion.values())
    # Known label values are exported at 0 from the start, so rate() sees the first event.
    types = {s.labels["type"] for s in clarion["clarion_events_in"].samples}
    assert types >= {c.value for c in Category}


def _sample_names() -> set[str]:
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("_count", "_sum", ""),
    }
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def test_every_metric_the_dashboard_queries_exists() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    queried = {m for e in exprs for m in re.findall(r"\b(?:clarion|process)_[a-z_]+", e)}
    assert len(queried) >= 15
    missing = queried - _sample_names()
    assert not missing, f"dashboard queries metrics the registry does not have: {missing}"
    # And it covers what issue 5 asks for.
    text = " ".join(exprs)
    for needed in (
        "clarion_events_in_total",
        "clarion_notifications_total",
        "clarion_digest_flushed_events_total",
        "histogram_quantile(0.99",
        "clarion_delivery_latency_seconds_bucket",
        "clarion_consumer_lag",
        "clarion_delivery_retries_total",
        "clarion_deliveries_dead_lettered_total",
    ):
        assert needed in text
