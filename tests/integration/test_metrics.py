"""GET /metrics on a real worker: the counters move by exactly what the pipeline did, and
consumer lag per lane rises under a backlog and returns to 0. Real broker, real worker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from devenv.sandbox import Sandbox
from logic.classify import to_notification
from logic.rules import load_rules
from logic.validation import decode_event
from schemas.common import Channel, Lane
from streams.catalog import CONTACTS, DLQ_DELIVERIES, delivery_topic, lane_topic
from tests.factories import delivery_bytes, event_bytes, event_dict
from tests.integration.conftest import FAST_RULES, Pipeline
from tests.integration.delivery_env import (
    delivering_pipeline,
    email,
    fcm_token,
    for_user,
    records_where,
    wait_for_sends,
)
from tests.integration.kafka_io import collect, produce, produce_json

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(p: Pipeline) -> Samples:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{p.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape_until(
    p: Pipeline, done: Callable[[Samples], bool], timeout_s: float = 60
) -> Samples:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        samples = await scrape(p)
        if done(samples) or asyncio.get_running_loop().time() > deadline:
            return samples
        await asyncio.sleep(0.5)


async def set_contacts(p: Pipeline, uid: str) -> None:
    contacts = {
        "user_id": uid,
        "devices": [{"token": f"fcm-{uid}-tok", "platform": "fcm"}],
        "email": f"{uid}@example.com",
    }
    await produce_json(p.bootstrap, p.topic(CONTACTS), contacts, uid)
    got = await collect(
        p.bootstrap,
        [f"{p.app_id}-contacts-changelog"],
        until=lambda kept: bool(kept),
        keep=lambda r: r.key == uid.encode(),
    )
    assert got, "contacts never applied"


async def test_counters_move_by_what_the_pipeline_did(pipeline: Pipeline, uid: str) -> None:
    await set_contacts(pipeline, uid)
    before = await scrape(pipeline)
    key = uid.encode()
    bootstrap = pipeline.bootstrap
    messages = [event_bytes("message", recipient_id=uid, conversation_id=f"c{i}") for i in range(2)]
    photo = {"kind": "photo", "id": "p1"}
    likes = [event_bytes("like", recipient_id=uid, object=photo, actor_id=a) for a in "xy"]
    stale = event_dict("marketing", recipient_id=uid)
    stale["occurred_at"] = (datetime.now(UTC) - timedelta(days=3)).isoformat()  # TTL is 2 days
    # Two messages and one of them again (a producer retry), a payment, two likes on one
    # photo (one digest), a marketing event past its TTL and a malformed message.
    await produce(bootstrap, pipeline.topic("events.messaging"), [*messages, messages[0]], key)
    await produce(
        bootstrap,
        pipeline.topic("events.payments"),
        [event_bytes("payment", recipient_id=uid)],
        key,
    )
    await produce(bootstrap, pipeline.topic("events.social"), [*likes, b"{not json"], key)
    await produce(bootstrap, pipeline.topic("events.marketing"), [json.dumps(stale).encode()], key)

    planned = {
        (Lane.HIGH, Channel.IN_APP): 2,
        (Lane.HIGH, Channel.PUSH): 2,
        (Lane.CRITICAL, Channel.IN_APP): 1,
        (Lane.CRITICAL, Channel.PUSH): 1,
        (Lane.CRITICAL, Channel.EMAIL): 1,
        (Lane.SOCIAL, Channel.IN_APP): 1,
        (Lane.SOCIAL, Channel.PUSH): 1,
    }

    def delta(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    def latency_count(samples: Samples, lane: Lane, channel: Channel) -> float:
        labels = {"lane": lane.value, "channel": channel.value}
        return delta(samples, "clarion_delivery_latency_seconds_count", **labels)

    def all_delivered(samples: Samples) -> bool:
        return all(latency_count(samples, *lc) >= n for lc, n in planned.items()) and bool(
            delta(
                samples,
                "clarion_notifications_dropped_total",
                lane="bulk",
                status="expired",
                reason="ttl_elapsed",
            )
        )

    after = await scrape_until(pipeline, all_delivered, timeout_s=90)
    await asyncio.sleep(2)  # anything extra (a second digest, a double count) shows up now
    after = await scrape(pipeline)

    events_in = {
        t: delta(after, "clarion_events_in_total", type=t)
        for t in ("message", "payment", "like", "marketing", "comment", "security_alert")
    }
    assert events_in == {
        "message": 2,
        "payment": 1,
        "like": 2,
        "marketing": 1,
        "comment": 0,
        "security_alert": 0,
    }
    assert delta(after, "clarion_events_duplicate_total", type="message") == 1
    assert delta(after, "clarion_events_dead_lettered_total", reason="malformed_json") == 1

    notifications = {
        (lane, channel): delta(
            after, "clarion_notifications_total", lane=lane.value, channel=channel.value
        )
        for lane in Lane
        for channel in Channel
    }
    assert {lc: n for lc, n in notifications.items() if n} == planned
    expired = {"lane": "bulk", "status": "expired", "reason": "ttl_elapsed"}
    assert delta(after, "clarion_notifications_dropped_total", **expired) == 1

    # Two likes, one window: the ratio is 2 notifications per digest.
    assert delta(after, "clarion_digest_gathered_total", lane="social") == 2
    assert delta(after, "clarion_digest_flushed_total", lane="social") == 1
    assert delta(after, "clarion_digest_flushed_events_total", lane="social") == 2
    assert value(after, "clarion_digest_aggregation_ratio", lane="social") == 2.0

    # Every delivery reached its channel once (outbox stands in for push and email here),
    # and its latency was observed once.
    for (lane, channel), n in planned.items():
        assert latency_count(after, lane, channel) == n, (lane, channel)
        labels = {"lane": lane.value, "channel": channel.value}
        assert delta(after, "clarion_delivery_latency_seconds_sum", **labels) > 0
        if channel is not Channel.IN_APP:
            sends = {"provider": "outbox", "outcome": "sent", **labels}
            assert delta(after, "clarion_provider_sends_total", **sends) == n
        assert delta(after, "clarion_delivery_outcomes_total", status="sent", **labels) == n


async def test_consumer_lag_per_lane_rises_under_a_backlog_and_drains(
    pipeline: Pipeline, uid: str
) -> None:
    backlog = 1500
    rules = load_rules(FAST_RULES)
    topic = pipeline.topic(lane_topic(Lane.CRITICAL))
    now = datetime.now(UTC)
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, linger_ms=20)
    await producer.start()
    try:
        for i in range(backlog):
            event = decode_event(event_bytes("payment", recipient_id=uid), 65536)
            n = to_notification(event, rules, now, "test:0", i)  # type: ignore[arg-type]
            await producer.send(topic, n.model_dump_json().encode(), key=uid.encode())
        await producer.flush()
    finally:
        await producer.stop()

    series = {"lane": "critical", "topic": "notifications.critical"}
    highest = 0.0
    deadline = asyncio.get_running_loop().time() + 120
    samples = await scrape(pipeline)
    while asyncio.get_running_loop().time() < deadline:
        samples = await scrape(pipeline)
        lag = value(samples, "clarion_consumer_lag", **series)
        highest = max(highest, lag)
        planned = value(samples, "clarion_notifications_total", lane="critical", channel="in_app")
        if highest > 0 and lag == 0 and planned >= backlog:
            break
        await asyncio.sleep(0.1)

    assert highest > 0, "lag never showed the backlog"
    assert highest <= backlog
    assert value(samples, "clarion_consumer_lag", **series) == 0
    # Every lane's topics are reported, each by its own lane.
    lanes = {
        dict(labels)["topic"]: dict(labels)["lane"]
        for name, labels in samples
        if name == "clarion_consumer_lag"
    }
    for lane in Lane:
        assert lanes[f"notifications.{lane.value}"] == lane.value
        for channel in Channel:
            assert lanes[f"deliveries.{channel.value}.{lane.value}"] == lane.value
    assert not any(t.startswith("events.") or t == "deliveries.retry" for t in lanes)


@pytest.fixture
def delivering(kafka_bootstrap: str, tmp_path: Path, sandbox: Sandbox) -> Iterator[Pipeline]:
    """A fresh worker wired to the provider sandbox (real SDKs), with fast retries."""
    with delivering_pipeline(kafka_bootstrap, tmp_path, sandbox) as p:
        yield p


async def test_provider_outcomes_retries_and_dead_letters(
    delivering: Pipeline, sandbox: Sandbox, uid: str
) -> None:
    p = delivering
    ok, dead, mail = fcm_token(), fcm_token(), email()
    hook = sandbox.webhook_url(uid)
    sandbox.inject("fcm", target=dead, error="UNREGISTERED")  # permanent
    sandbox.inject("sendgrid", target=mail, status=503)  # transient, forever
    sandbox.inject("webhook", target=uid, times=2, status=503)  # twice, then accepted
    key = uid.encode()
    push = p.topic(delivery_topic(Channel.PUSH, Lane.HIGH))
    await produce(
        p.bootstrap,
        push,
        [
            delivery_bytes("push", uid, ok, platform="fcm"),
            delivery_bytes("push", uid, dead, platform="fcm"),
        ],
        key,
    )
    email_topic = p.topic(delivery_topic(Channel.EMAIL, Lane.HIGH))
    await produce(p.bootstrap, email_topic, [delivery_bytes("email", uid, mail)], key)
    webhook_topic = p.topic(delivery_topic(Channel.WEBHOOK, Lane.HIGH))
    await produce(p.bootstrap, webhook_topic, [delivery_bytes("webhook", uid, hook)], key)

    assert await wait_for_sends(sandbox, "fcm", ok)
    assert await wait_for_sends(sandbox, "webhook", uid, timeout_s=45)
    assert len(await records_where(p, DLQ_DELIVERIES, for_user(uid), n=2, timeout_s=60)) == 2
    await asyncio.sleep(1)
    after = await scrape(p)

    def sends(provider: str, channel: str, outcome: str) -> float:
        labels = {"provider": provider, "channel": channel, "lane": "high", "outcome": outcome}
        return value(after, "clarion_provider_sends_total", **labels)

    assert sends("fcm", "push", "sent") == 1
    assert sends("fcm", "push", "permanent") == 1
    assert sends("sendgrid", "email", "transient") == 6  # CLARION_RETRY_MAX_ATTEMPTS
    assert sends("sendgrid", "email", "sent") == 0
    assert sends("webhook", "webhook", "transient") == 2
    assert sends("webhook", "webhook", "sent") == 1

    def retries(channel: str, via: str) -> float:
        labels = {"lane": "high", "channel": channel, "via": via}
        return value(after, "clarion_delivery_retries_total", **labels)

    assert retries("email", "topic") == 5
    assert retries("webhook", "in_place") == 2
    assert retries("push", "topic") == 0
    republished = {"lane": "high", "channel": "email"}
    assert value(after, "clarion_retries_republished_total", **republished) == 5

    def dead_letters(channel: str, provider: str, status: str) -> float:
        labels = {"lane": "high", "channel": channel, "provider": provider, "status": status}
        return value(after, "clarion_deliveries_dead_lettered_total", **labels)

    assert dead_letters("push", "fcm", "failed") == 1
    assert dead_letters("email", "sendgrid", "dead_lettered") == 1
    # Latency only for what a provider accepted: the good push and the webhook.
    for channel, n in (("push", 1), ("webhook", 1), ("email", 0)):
        labels = {"lane": "high", "channel": channel}
        assert value(after, "clarion_delivery_latency_seconds_count", **labels) == n
    sandbox.clear_faults("sendgrid")
    sandbox.clear_faults("fcm")
