"""emit (agents/emit.py), in-process: rendering, channels and targets, token buckets and the
`degraded` receipt. emit is not an agent of its own: it runs inside route (notifications
delivered at once) and digest (flushed windows), so the tests drive those agents."""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from logic.ids import delivery_id
from logic.partitioning import partition_of
from logic.render import GENERIC
from schemas.common import Category, Channel
from tests.stages.conftest import PARTITIONS, harness
from tests.stages.harness import StageHarness
from tests.stages.inputs import contacts, notification, preferences

UID = "alice"
APNS_TOKEN = "a" * 64


def deliveries(stage: StageHarness) -> list[dict[str, Any]]:
    return [r.json() for r in stage.sent(*stage.ctx.topics.deliveries.values(), key=UID)]


def receipts(stage: StageHarness) -> list[dict[str, Any]]:
    return [r.json() for r in stage.sent(stage.ctx.topics.receipts, key=UID)]


async def test_a_notification_becomes_one_delivery_per_channel_and_target(
    stage: StageHarness,
) -> None:
    devices = [
        {"token": f"fcm-{UID}-token", "platform": "fcm"},
        {"token": APNS_TOKEN, "platform": "apns"},
    ]
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID, devices=devices))
    message = notification(stage.ctx.rules, "message", recipient_id=UID, preview="hey there")
    async with stage.run("route.high") as route:
        await route.put(message, key=UID)

    found = deliveries(stage)
    assert sorted(
        (d["channel"], d["target"]["address"], d["target"]["platform"]) for d in found
    ) == [
        ("in_app", UID, None),
        ("push", APNS_TOKEN, "apns"),
        ("push", f"fcm-{UID}-token", "fcm"),
    ]
    # Rendered from the `en` templates; the ids are deterministic (a replay maps to them).
    assert {(d["title"], d["body"]) for d in found} == {("Bob", "hey there")}
    for d in found:
        nid = message.notification_id
        assert d["delivery_id"] == delivery_id(nid, Channel(d["channel"]), d["target"]["address"])
    topics = sorted(r.topic for r in stage.sent(*stage.ctx.topics.deliveries.values()))
    assert topics == ["deliveries.in_app.high", "deliveries.push.high", "deliveries.push.high"]


async def test_the_users_locale_is_rendered(stage: StageHarness) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    stage.seed(stage.ctx.tables.preferences, UID, preferences(UID, locale="es"))
    start = math.floor(time.time() / 30) * 30 - 300  # a like window that ended minutes ago
    async with stage.run("route.social") as route, stage.run("digest.ticks") as ticks:
        for i, actor in enumerate(["Ana", "Luis"]):
            at = start + 1 + i
            like = notification(
                stage.ctx.rules,
                "like",
                recipient_id=UID,
                actor_id=actor.lower(),
                actor_name=actor,
                occurred_at=datetime.fromtimestamp(at, UTC).isoformat(),
            )
            await route.put(like, key=UID, timestamp=at)
        await ticks.put(time.time(), partition=partition_of(UID, PARTITIONS))

    found = deliveries(stage)
    assert {(d["title"], d["body"]) for d in found} == {
        ("Nuevo me gusta", "A Ana y 1 más le gustó tu photo")
    }
    assert sorted(d["channel"] for d in found) == ["in_app", "push"]


async def test_the_token_bucket_throttles_push_but_never_in_app(stage: StageHarness) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    stage.seed(stage.ctx.tables.preferences, UID, preferences(UID, rate_limits={"push": 2}))
    async with stage.run("route.high") as route:
        for i in range(5):
            m = notification(stage.ctx.rules, "message", recipient_id=UID, conversation_id=f"c{i}")
            await route.put(m, key=UID)

    assert Counter(d["channel"] for d in deliveries(stage)) == {"in_app": 5, "push": 2}
    throttled = [r for r in receipts(stage) if r["status"] == "throttled"]
    assert [(r["channel"], r["reason"]) for r in throttled] == [("push", "rate_limited")] * 3
    # The bucket is a table row of the recipient's partition (changelogged there).
    [bucket] = [
        r for r in stage.sent("stage-test-buckets-changelog") if r.key == f"{UID}\x1fpush".encode()
    ][-1:]
    assert bucket.partition == partition_of(UID, PARTITIONS)
    assert bucket.json()[0] < 1  # no whole token left


async def test_critical_is_never_rate_limited(tmp_path: Path) -> None:
    """Not even when the rules give a critical category a rate class: the lane decides."""
    text = resources.files("logic").joinpath("rules.toml").read_text()
    payment = '[categories.payment]\nlane = "critical"\n'
    assert payment in text
    rules = tmp_path / "rules.toml"
    rules.write_text(text.replace(payment, payment + 'rate_class = "high"\n'))
    stage = harness(tmp_path, rules_path=rules)
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    stage.seed(stage.ctx.tables.preferences, UID, preferences(UID, rate_limits={"push": 1}))
    async with stage.run("route.high") as high, stage.run("route.critical") as critical:
        # One message spends the user's only push token...
        await high.put(notification(stage.ctx.rules, "message", recipient_id=UID), key=UID)
        # ...and payments still go to push, every one.
        for _ in range(4):
            await critical.put(notification(stage.ctx.rules, "payment", recipient_id=UID), key=UID)

    pushes = [d for d in deliveries(stage) if d["channel"] == "push"]
    assert Counter(d["category"] for d in pushes) == {"message": 1, "payment": 4}
    assert [r for r in receipts(stage) if r["status"] == "throttled"] == []


async def test_a_template_that_fails_gives_generic_text_and_a_degraded_receipt(
    stage: StageHarness,
) -> None:
    """A payment whose data lacks `status`: the `en` template cannot print it, so the
    generic payment text goes out, with a `degraded` receipt saying why."""
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    payment = notification(stage.ctx.rules, "payment", recipient_id=UID)
    broken = payment.model_copy(update={"data": {"amount": "12.50", "currency": "EUR"}})
    async with stage.run("route.critical") as route:
        await route.put(broken, key=UID)

    found = deliveries(stage)
    assert sorted(d["channel"] for d in found) == ["email", "in_app", "push"]
    assert {(d["title"], d["body"]) for d in found} == {GENERIC[Category.PAYMENT]}
    [note] = [r for r in receipts(stage) if r["status"] == "degraded"]
    assert (note["status"], note["reason"]) == ("degraded", "template_error")
    assert note["notification_id"] == payment.notification_id
