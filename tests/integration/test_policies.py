"""Rate limits, quiet hours, TTL and the critical bypass on a real broker and worker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas.common import Channel, Lane
from streams.catalog import CONTACTS, PREFERENCES, RECEIPTS, delivery_topic
from tests.factories import event_bytes
from tests.integration.conftest import Pipeline
from tests.integration.kafka_io import collect, produce, produce_json, values

pytestmark = pytest.mark.integration

ALL_DELIVERIES = [delivery_topic(c, lane) for c in Channel for lane in Lane]


async def setup_user(p: Pipeline, uid: str, **prefs: Any) -> None:
    contacts = {
        "user_id": uid,
        "devices": [{"token": f"fcm-{uid}-tok", "platform": "fcm"}],
        "email": f"{uid}@example.com",
    }
    await produce_json(p.bootstrap, p.topic(CONTACTS), contacts, uid)
    await produce_json(p.bootstrap, p.topic(PREFERENCES), {"user_id": uid, **prefs}, uid)
    for table in ("contacts", "preferences"):
        got = await collect(
            p.bootstrap,
            [f"{p.app_id}-{table}-changelog"],
            until=lambda kept: bool(kept),
            keep=lambda r: r.key == uid.encode(),
        )
        assert got, f"{table} for {uid} never applied"


async def deliveries(p: Pipeline, uid: str, n: int, timeout_s: float = 30) -> list[dict]:
    return values(
        await collect(
            p.bootstrap,
            [p.topic(t) for t in ALL_DELIVERIES],
            until=lambda kept: len(kept) >= n,
            keep=lambda r: r.key == uid.encode(),
            timeout_s=timeout_s,
        )
    )


async def receipts(p: Pipeline, uid: str, n: int, timeout_s: float = 30) -> list[dict]:
    return values(
        await collect(
            p.bootstrap,
            [p.topic(RECEIPTS)],
            until=lambda kept: len(kept) >= n,
            keep=lambda r: r.key == uid.encode(),
            timeout_s=timeout_s,
        )
    )


def by_channel(found: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in found:
        counts[d["channel"]] = counts.get(d["channel"], 0) + 1
    return counts


async def test_bucket_exhaustion_throttles_push_but_not_in_app(
    pipeline: Pipeline, uid: str
) -> None:
    await setup_user(pipeline, uid, rate_limits={"push": 2})
    messages = [event_bytes("message", recipient_id=uid, conversation_id=f"c{i}") for i in range(5)]
    await produce(pipeline.bootstrap, pipeline.topic("events.messaging"), messages, uid.encode())
    found = await deliveries(pipeline, uid, 7)
    await asyncio.sleep(1)
    found = await deliveries(pipeline, uid, 8, timeout_s=2)
    assert by_channel(found) == {"in_app": 5, "push": 2}
    throttled = [r for r in await receipts(pipeline, uid, 10) if r["status"] == "throttled"]
    assert [(r["channel"], r["reason"]) for r in throttled] == [("push", "rate_limited")] * 3


async def test_critical_bypasses_limits_quiet_hours_and_digest_settings(
    pipeline: Pipeline, uid: str
) -> None:
    now = datetime.now(UTC)
    quiet = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=1)):%H:%M}"
    await setup_user(
        pipeline, uid, rate_limits={"push": 1}, quiet_hours=quiet, digest={"payment": "off"}
    )
    started = time.monotonic()
    payments = [event_bytes("payment", recipient_id=uid) for _ in range(3)]
    await produce(pipeline.bootstrap, pipeline.topic("events.payments"), payments, uid.encode())
    found = await deliveries(pipeline, uid, 9)
    assert by_channel(found) == {"in_app": 3, "push": 3, "email": 3}
    assert time.monotonic() - started < 15  # not held for an hour, not aggregated


async def test_quiet_hours_hold_then_deliver_aggregated_when_they_end(
    pipeline: Pipeline, uid: str
) -> None:
    zone = "America/New_York"
    local = datetime.now(ZoneInfo(zone))
    end = (local + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (end - local).total_seconds() < 25:  # leave time to produce before they end
        end += timedelta(minutes=1)
    quiet = f"{(local - timedelta(hours=2)):%H:%M}-{end:%H:%M}"
    await setup_user(pipeline, uid, quiet_hours=quiet, timezone=zone)
    msgs = [
        event_bytes("message", recipient_id=uid, conversation_id="c1", preview=f"m{i}")
        for i in range(3)
    ]
    await produce(pipeline.bootstrap, pipeline.topic("events.messaging"), msgs, uid.encode())
    await produce(
        pipeline.bootstrap,
        pipeline.topic("events.social"),
        [event_bytes("like", recipient_id=uid)],
        uid.encode(),
    )
    await asyncio.sleep(8)  # well past the 3 s like window: still nothing during quiet hours
    assert await deliveries(pipeline, uid, 1, timeout_s=1) == []

    wait_s = (end - datetime.now(ZoneInfo(zone))).total_seconds()
    found = await deliveries(pipeline, uid, 4, timeout_s=wait_s + 20)
    released_at = datetime.now(ZoneInfo(zone))
    assert released_at >= end
    message = [d for d in found if d["category"] == "message"]
    assert {d["count"] for d in message} == {3}  # three messages, one notification per channel
    assert message[0]["body"] == "3 new messages"
    assert by_channel(found) == {"in_app": 2, "push": 2}


async def test_social_over_the_limit_folds_into_the_next_digest(
    pipeline: Pipeline, uid: str
) -> None:
    await setup_user(pipeline, uid, rate_limits={"push": 1})
    social = pipeline.topic("events.social")
    photo = {"kind": "photo", "id": "p1"}
    await produce(
        pipeline.bootstrap,
        social,
        [event_bytes("like", recipient_id=uid, object=photo)],
        uid.encode(),
    )
    first = await deliveries(pipeline, uid, 2)
    assert by_channel(first) == {"in_app": 1, "push": 1}  # the one push token is spent
    other = {"kind": "photo", "id": "p2"}
    await produce(
        pipeline.bootstrap,
        social,
        [event_bytes("like", recipient_id=uid, object=other, actor_id=f"x{i}") for i in range(2)],
        uid.encode(),
    )
    await asyncio.sleep(8)  # its 3 s window is over, but no push token: it keeps gathering
    assert len(await deliveries(pipeline, uid, 3, timeout_s=1)) == 2
    held = await collect(
        pipeline.bootstrap,
        [f"{pipeline.app_id}-digests-changelog"],
        until=lambda kept: False,
        timeout_s=2,
        keep=lambda r: r.key.startswith(f"{uid}\x1flike:photo:p2".encode()),
    )
    last = values(held)[-1]
    assert last["count"] == 2
    assert last["deadline"] > time.time() + 3000  # waits for the next token, about an hour


async def test_stale_notification_is_dropped_with_an_expired_receipt(
    pipeline: Pipeline, uid: str
) -> None:
    old = (datetime.now(UTC) - timedelta(hours=7)).isoformat()  # like TTL is 6 h
    fresh = event_bytes("follow", recipient_id=uid)
    await produce(
        pipeline.bootstrap,
        pipeline.topic("events.social"),
        [event_bytes("like", recipient_id=uid, occurred_at=old), fresh],
        uid.encode(),
    )
    found = await deliveries(pipeline, uid, 1)
    assert {d["category"] for d in found} == {"follow"}
    expired = [r for r in await receipts(pipeline, uid, 2) if r["status"] == "expired"]
    assert [r["reason"] for r in expired] == ["ttl_elapsed"]
