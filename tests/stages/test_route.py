"""route, in-process: one lane agent per test, reading the recipient's memory tables and
producing deliveries, receipts and window rows (tests/stages/harness.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from logic.partitioning import partition_of
from schemas.common import Channel, Lane
from schemas.control import EscalationStep
from schemas.digests import DigestWindow
from sinks import inapp
from streams.in_place import IN_PLACE_HEADER
from tables import keys
from tests.stages.conftest import PARTITIONS
from tests.stages.harness import Record, StageHarness
from tests.stages.inputs import consumer_record, contacts, notification, preferences

UID = "alice"


def deliveries(stage: StageHarness, uid: str = UID) -> list[dict[str, Any]]:
    topics = stage.ctx.topics.deliveries.values()
    return [r.json() for r in stage.sent(*topics, key=uid)]


def receipts(stage: StageHarness, uid: str = UID) -> list[dict[str, Any]]:
    return [r.json() for r in stage.sent(stage.ctx.topics.receipts, key=uid)]


def not_delivered(stage: StageHarness, uid: str = UID) -> list[dict[str, Any]]:
    """Receipts other than the in-app deliveries a critical route makes in place."""
    return [
        r
        for r in receipts(stage, uid)
        if not (r.get("channel") == "in_app" and r["status"] in ("sent", "delivered"))
    ]


def windows(stage: StageHarness, uid: str = UID) -> list[DigestWindow]:
    rows = stage.ctx.tables.digests.data.items()
    return [DigestWindow.model_validate(v) for k, v in rows if k.startswith(f"{uid}\x1f".encode())]


def quiet_now(hours: int = 1) -> str:
    """Quiet hours (UTC) around the present moment."""
    now = datetime.now(UTC)
    return f"{now - timedelta(hours=hours):%H:%M}-{now + timedelta(hours=hours):%H:%M}"


async def test_a_critical_event_is_delivered_now_on_its_critical_topics(
    stage: StageHarness,
) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    payment = notification(stage.ctx.rules, "payment", recipient_id=UID)
    async with stage.run("route.critical") as route:
        await route.put(payment, key=UID)

    sent: list[Record] = stage.sent(*stage.ctx.topics.deliveries.values())
    assert sorted(r.topic for r in sent) == [
        "deliveries.email.critical",
        "deliveries.in_app.critical",
        "deliveries.push.critical",
    ]
    # Keyed by the recipient, on the recipient's partition (co-partitioned with the lanes).
    assert {(r.key, r.partition) for r in sent} == {(UID.encode(), partition_of(UID, PARTITIONS))}
    found = deliveries(stage)
    assert sorted((d["channel"], d["lane"], d["target"]["address"]) for d in found) == [
        ("email", "critical", f"{UID}@example.com"),
        ("in_app", "critical", UID),
        ("push", "critical", f"fcm-{UID}-token"),
    ]
    assert {d["title"] for d in found} == {"Payment succeeded"}
    assert {d["notification_id"] for d in found} == {payment.notification_id}
    assert not_delivered(stage) == []  # nothing dropped, nothing degraded


async def test_a_critical_in_app_delivery_is_made_in_place(stage: StageHarness) -> None:
    """The route stores the item in the inbox itself (no hop through the in-app topic) and
    writes its receipt; the record on the topic is marked, so the sink skips it."""
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    payment = notification(stage.ctx.rules, "payment", recipient_id=UID)
    async with stage.run("route.critical") as route:
        await route.put(payment, key=UID)

    [record] = stage.sent(stage.ctx.topics.deliveries[(Channel.IN_APP, Lane.CRITICAL)])
    assert record.headers == {IN_PLACE_HEADER: b"1"}
    [item] = stage.ctx.tables.inbox[keys.user_key(UID)]
    delivery_id = record.json()["delivery_id"]
    assert (item.notification_id, item.id) == (payment.notification_id, delivery_id)
    [receipt] = [r for r in receipts(stage) if r.get("channel") == "in_app"]
    assert (receipt["delivery_id"], receipt["status"]) == (item.id, "sent")  # no live client
    # The sink, handed the marked record, leaves the inbox and the receipts as they are.
    apply = inapp.applier(stage.ctx, Lane.CRITICAL)
    assert record.value is not None
    topic = stage.ctx.topics.deliveries[(Channel.IN_APP, Lane.CRITICAL)].get_topic_name()
    marked = consumer_record(topic, 0, UID.encode(), record.value, headers=record.headers)
    assert await apply(0, [marked]) == []
    assert len(stage.ctx.tables.inbox[keys.user_key(UID)]) == 1
    assert len([r for r in receipts(stage) if r.get("channel") == "in_app"]) == 1


async def test_a_security_alert_without_location_is_delivered_and_its_ladder_scheduled(
    stage: StageHarness,
) -> None:
    """`location` is optional: an alert without it once crashed route.critical. The packaged
    rules escalate security alerts push -> SMS -> email: in-app and push go now, the rest
    waits on `escalations` for the confirmation window."""
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID, phone="+15550001234"))
    rules = stage.ctx.rules
    bare = notification(rules, "security_alert", recipient_id=UID, location=None)
    located = notification(rules, "security_alert", recipient_id=UID, alert="password_changed")
    before = datetime.now(UTC)
    async with stage.run("route.critical") as route:
        await route.put(bare, key=UID)
        await route.put(located, key=UID)

    found = deliveries(stage)
    assert sorted((d["channel"], d["lane"]) for d in found) == sorted(
        (c, "critical") for c in ["in_app", "push"] * 2
    )
    tail = "If this wasn't you, secure your account now."
    assert {d["body"] for d in found} == {
        f"New sign-in to your account. {tail}",
        f"Your password was changed from Lisbon. {tail}",
    }
    steps = [
        EscalationStep.model_validate(r.json()) for r in stage.sent(stage.ctx.topics.escalations)
    ]
    assert [s.notification_id for s in steps] == [bare.notification_id, located.notification_id]
    for step in steps:
        assert [[(d.channel, d.target.address) for d in rung] for rung in step.steps] == [
            [(Channel.SMS, "+15550001234")],
            [(Channel.EMAIL, f"{UID}@example.com")],
        ]
        wait = (step.due_at - before).total_seconds()
        assert step.confirm_within_s == 120 and 120 <= wait < 130
    # The rungs carry the same rendered text as the deliveries sent now.
    assert {d.body for s in steps for rung in s.steps for d in rung} == {d["body"] for d in found}
    assert not_delivered(stage) == []  # no `degraded` either


async def test_critical_bypasses_limits_quiet_hours_and_digest_settings(
    stage: StageHarness,
) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    stage.seed(
        stage.ctx.tables.preferences,
        UID,
        preferences(
            UID, rate_limits={"push": 1}, quiet_hours=quiet_now(), digest={"payment": "off"}
        ),
    )
    async with stage.run("route.critical") as route:
        for _ in range(3):
            await route.put(notification(stage.ctx.rules, "payment", recipient_id=UID), key=UID)

    channels = sorted(d["channel"] for d in deliveries(stage))
    assert channels == ["email"] * 3 + ["in_app"] * 3 + ["push"] * 3
    assert not_delivered(stage) == []
    assert windows(stage) == []


async def test_a_social_event_is_gathered_into_a_window_not_delivered(
    stage: StageHarness,
) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    like = notification(stage.ctx.rules, "like", recipient_id=UID)
    async with stage.run("route.social") as route:
        await route.put(like, key=UID)

    assert deliveries(stage) == [] and receipts(stage) == []
    [window] = windows(stage)
    assert (window.group_key, window.count, window.lane) == ("like:photo:p1", 1, Lane.SOCIAL)
    assert window.window_end - window.window_start == 30  # the like rule's window
    assert window.first.notification_id == like.notification_id
    # The row went to the digests changelog, on the record's partition.
    [row] = stage.sent("stage-test-digests-changelog")
    assert row.partition == partition_of(UID, PARTITIONS)


async def test_an_expired_event_gets_an_expired_receipt(stage: StageHarness) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    old = (datetime.now(UTC) - timedelta(hours=7)).isoformat()  # like TTL is 6 h
    rules = stage.ctx.rules
    stale = notification(rules, "like", recipient_id=UID, occurred_at=old)
    fresh = notification(rules, "follow", recipient_id=UID)
    async with stage.run("route.social") as route:
        await route.put(stale, key=UID)
        await route.put(fresh, key=UID)

    [expired] = receipts(stage)
    assert (expired["status"], expired["reason"]) == ("expired", "ttl_elapsed")
    assert expired["notification_id"] == stale.notification_id
    assert deliveries(stage) == []
    assert [w.group_key for w in windows(stage)] == ["follow"]  # the fresh one is gathered


async def test_quiet_hours_hold_a_high_notification_in_a_window_until_they_end(
    stage: StageHarness,
) -> None:
    zone = "America/New_York"
    local = datetime.now(ZoneInfo(zone))
    end = (local + timedelta(minutes=10)).replace(second=0, microsecond=0)
    quiet = f"{local - timedelta(hours=2):%H:%M}-{end:%H:%M}"
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    stage.seed(
        stage.ctx.tables.preferences, UID, preferences(UID, quiet_hours=quiet, timezone=zone)
    )
    rules = stage.ctx.rules
    async with stage.run("route.high") as route:
        for i in range(3):
            m = notification(
                rules, "message", recipient_id=UID, conversation_id="c1", preview=f"m{i}"
            )
            await route.put(m, key=UID)

    assert deliveries(stage) == [] and receipts(stage) == []
    [window] = windows(stage)  # one window per conversation
    assert (window.group_key, window.count) == ("message:c1", 3)
    assert window.deadline == end.timestamp()  # held until quiet hours end


async def test_an_opted_out_channel_is_not_used_but_a_required_one_is(
    stage: StageHarness,
) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    # Payments require in-app and email: opting out of email does not remove it; push goes.
    prefs = preferences(UID, opt_out={"payment": ["push", "email"]})
    stage.seed(stage.ctx.tables.preferences, UID, prefs)
    async with stage.run("route.critical") as route:
        await route.put(notification(stage.ctx.rules, "payment", recipient_id=UID), key=UID)

    assert sorted(d["channel"] for d in deliveries(stage)) == ["email", "in_app"]


async def test_a_disabled_channel_applies_to_the_next_event(stage: StageHarness) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    rules = stage.ctx.rules
    async with stage.run("route.high") as route:
        await route.put(
            notification(rules, "message", recipient_id=UID, conversation_id="a"), key=UID
        )
        assert sorted(d["channel"] for d in deliveries(stage)) == ["in_app", "push"]
        # The profiles agent applies a preference update to the table.
        stage.seed(stage.ctx.tables.preferences, UID, preferences(UID, disabled_channels=["push"]))
        await route.put(
            notification(rules, "message", recipient_id=UID, conversation_id="b"), key=UID
        )

    assert sorted(d["channel"] for d in deliveries(stage)) == ["in_app", "in_app", "push"]


async def test_missing_contact_points_leave_out_their_channels(stage: StageHarness) -> None:
    # No contacts row at all: in-app needs none; push and the required email have no target.
    async with stage.run("route.critical") as route:
        await route.put(notification(stage.ctx.rules, "payment", recipient_id=UID), key=UID)

    assert [(d["channel"], d["target"]["address"]) for d in deliveries(stage)] == [("in_app", UID)]
    assert not_delivered(stage) == []


async def test_no_reachable_channel_gives_a_no_contact_receipt(stage: StageHarness) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID, devices=[], email=None))
    stage.seed(stage.ctx.tables.preferences, UID, preferences(UID, disabled_channels=["in_app"]))
    message = notification(stage.ctx.rules, "message", recipient_id=UID)
    async with stage.run("route.high") as route:
        await route.put(message, key=UID)

    assert deliveries(stage) == []
    [receipt] = receipts(stage)
    assert (receipt["status"], receipt["reason"]) == ("suppressed", "no_contact")
    assert receipt["notification_id"] == message.notification_id


async def test_a_category_with_digest_off_is_suppressed(stage: StageHarness) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    stage.seed(stage.ctx.tables.preferences, UID, preferences(UID, digest={"like": "off"}))
    async with stage.run("route.social") as route:
        await route.put(notification(stage.ctx.rules, "like", recipient_id=UID), key=UID)

    assert deliveries(stage) == [] and windows(stage) == []
    [receipt] = receipts(stage)
    assert (receipt["status"], receipt["reason"]) == ("suppressed", "digest_off")


async def test_bulk_is_shed_when_its_partition_is_far_behind(stage: StageHarness) -> None:
    stage.seed(stage.ctx.tables.contacts, UID, contacts(UID))
    bulk = stage.ctx.topics.lanes[Lane.BULK]
    shed_lag = stage.ctx.settings.bulk_shed_lag
    first = notification(stage.ctx.rules, "marketing", recipient_id=UID)
    second = notification(stage.ctx.rules, "marketing", recipient_id=UID)
    async with stage.run("route.bulk") as route:
        await route.put(first, key=UID)  # caught up: gathered into the hourly digest
        stage.behind(bulk, partition_of(UID, PARTITIONS), shed_lag + 1)
        await route.put(second, key=UID)

    [receipt] = receipts(stage)
    assert (receipt["status"], receipt["reason"]) == ("throttled", "shed_under_pressure")
    assert receipt["notification_id"] == second.notification_id
    [window] = windows(stage)
    assert (window.group_key, window.count) == ("marketing", 1)
