"""A provider outage: every provider answers 503 for 60 s (20 s in `make test`). Afterwards
everything is delivered exactly once, and webhooks (the channel that promises per-user order)
arrive in order per user."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest

from devenv.sandbox import Sandbox
from schemas.common import Channel, Lane
from streams.catalog import delivery_topic
from tests.factories import delivery_bytes
from tests.integration.conftest import Figure, Pipeline, drill_size
from tests.integration.delivery_env import (
    apns_token,
    delivering_pipeline,
    email,
    fcm_token,
    phone,
)
from tests.integration.kafka_io import produce

OUTAGE_S = drill_size(60, 20)
USERS = 10
PROVIDERS = ("fcm", "apns", "sendgrid", "twilio", "webhook")


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox
) -> Iterator[Pipeline]:
    # Backoff 1 s doubling to 8 s, 30 tries: whatever the jitter, the tries span > 100 s.
    with delivering_pipeline(
        kafka_bootstrap,
        tmp_path_factory.mktemp("outage"),
        sandbox,
        CLARION_RETRY_BASE_S="1",
        CLARION_RETRY_CAP_S="8",
        CLARION_RETRY_MAX_ATTEMPTS="30",
    ) as p:
        yield p


async def test_everything_is_delivered_after_an_outage_in_order_where_promised(
    pipeline: Pipeline, sandbox: Sandbox, figure: Figure
) -> None:
    for provider in PROVIDERS:
        sandbox.inject(provider, status=503)
    started = time.monotonic()
    expected: dict[str, str] = {}  # delivery id -> provider
    for u in range(USERS):
        uid = f"outage-{u}"
        key = uid.encode()
        plan = [
            (Channel.WEBHOOK, None, sandbox.webhook_url(uid), "webhook", 10),
            (Channel.PUSH, "fcm", fcm_token(), "fcm", 5),
            (Channel.PUSH, "apns", apns_token(), "apns", 5),
            (Channel.EMAIL, None, email(), "sendgrid", 5),
            (Channel.SMS, None, phone(), "twilio", 5),
        ]
        for channel, platform, address, provider, count in plan:
            raws = [
                delivery_bytes(channel.value, uid, address, platform=platform, data={"seq": str(i)})
                for i in range(count)
            ]
            expected |= {json.loads(r)["delivery_id"]: provider for r in raws}
            topic = pipeline.topic(delivery_topic(channel, Lane.HIGH))
            await produce(pipeline.bootstrap, topic, raws, key=key)
    # Let the outage run its course while the worker keeps failing and retrying.
    await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
    assert [s for s in sandbox.sends() if s.delivery_id in expected] == []
    sandbox.clear_faults()

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        got = [s for s in sandbox.sends() if s.delivery_id in expected]
        if len({s.delivery_id for s in got}) == len(expected):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # anything still in flight would show up as a duplicate
    got = [s for s in sandbox.sends() if s.delivery_id in expected]
    counts = Counter(s.delivery_id for s in got)
    lost = set(expected) - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    figures = f"outage: {len(expected)} deliveries, lost {len(lost)}, duplicates {duplicates}"
    figure(figures)
    assert not lost
    assert duplicates == 0
    assert {s.provider for s in got} == set(PROVIDERS)
    # Webhooks promise per-user order: each user's endpoint saw seq 0..9 in order.
    by_user: dict[str, list[int]] = defaultdict(list)
    for s in sorted((s for s in got if s.provider == "webhook"), key=lambda s: s.received_at):
        by_user[s.target].append(int(s.payload["data"]["seq"]))
    assert len(by_user) == USERS
    assert all(seqs == list(range(10)) for seqs in by_user.values()), by_user
