"""Delivery in the split topology (README, "Critical lane in its own process"): the critical
lane in its own consumer group, the other lanes in another. Both groups read the shared
control topics (retries, escalations, confirmations, provider feedback); exactly one must
act on each record. Real broker, two real workers, real SDKs against the sandbox."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord

from devenv.sandbox import Sandbox
from logic.tokens import issue_token
from schemas.common import Channel, Lane
from streams.catalog import DLQ_DELIVERIES, ESCALATIONS, RECEIPTS, delivery_topic
from tests.factories import delivery_bytes
from tests.integration.conftest import TEST_SECRET, Pipeline
from tests.integration.delivery_env import (
    delivering_pipeline,
    email,
    fcm_token,
    phone,
    value,
    wait_for_sends,
)
from tests.integration.kafka_io import collect, produce

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def groups(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox
) -> Iterator[tuple[Pipeline, Pipeline]]:
    """(critical group, high+social+bulk group): one topic prefix, two app ids."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    tmp = tmp_path_factory.mktemp("split")
    with ExitStack() as stack:
        critical = stack.enter_context(
            delivering_pipeline(
                kafka_bootstrap,
                tmp / "critical",
                sandbox,
                prefix=prefix,
                app_id=f"{prefix}critical",
                CLARION_LANES="critical",
            )
        )
        rest = stack.enter_context(
            delivering_pipeline(
                kafka_bootstrap,
                tmp / "rest",
                sandbox,
                prefix=prefix,
                app_id=f"{prefix}rest",
                CLARION_LANES="high,social,bulk",
            )
        )
        yield critical, rest


async def read_all(
    p: Pipeline,
    topics: list[str],
    keep: Any,
    at_least: int,
    settle_s: float = 3.0,
    timeout_s: float = 60.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every kept record once `at_least` are there and `settle_s` more brought no others
    (so an extra copy, if there is one, is counted)."""
    names = [p.topic(t) for t in topics]
    got = await collect(p.bootstrap, names, lambda k: len(k) >= at_least, timeout_s, keep)
    if len(got) < at_least:
        return got
    await asyncio.sleep(settle_s)
    return await collect(p.bootstrap, names, lambda k: False, settle_s, keep)


async def test_a_retried_push_is_republished_by_one_group_and_sent_once(
    groups: tuple[Pipeline, Pipeline], sandbox: Sandbox, uid: str
) -> None:
    critical, _rest = groups
    users = [f"{uid}-{i}" for i in range(8)]
    lanes = {Lane.HIGH: 30, Lane.CRITICAL: 10}
    ids: set[str] = set()
    for lane, n in lanes.items():
        batch: dict[str, list[bytes | None]] = {}
        for i in range(n):
            token = fcm_token()
            sandbox.inject("fcm", target=token, error="UNAVAILABLE", times=1)  # fail once
            user = users[i % len(users)]
            raw = delivery_bytes("push", user, token, platform="fcm", lane=lane.value)
            ids.add(str(json.loads(raw)["delivery_id"]))
            batch.setdefault(user, []).append(raw)
        topic = critical.topic(delivery_topic(Channel.PUSH, lane))
        await asyncio.gather(
            *(
                produce(critical.bootstrap, topic, raws, user.encode())
                for user, raws in batch.items()
            )
        )
    total = sum(lanes.values())
    keys = {u.encode() for u in users}

    def ours(r: ConsumerRecord[bytes, bytes]) -> bool:
        return r.key in keys

    # Each delivery is on its topic twice: the original and exactly one republished retry.
    topics = [delivery_topic(Channel.PUSH, lane) for lane in lanes]
    on_topics = await read_all(critical, topics, ours, 2 * total)
    copies = Counter(value(r)["delivery_id"] for r in on_topics)
    assert set(copies) == ids
    assert sorted(Counter(copies.values()).items()) == [(2, total)], copies

    receipts = await read_all(critical, [RECEIPTS], ours, 2 * total, settle_s=1.0)
    statuses = Counter((value(r)["delivery_id"], value(r)["status"]) for r in receipts)
    assert statuses == Counter({(d, s): 1 for d in ids for s in ("retrying", "sent")})
    # Accepted exactly once each, from the sandbox's own record.
    sent = Counter(s.delivery_id for s in sandbox.sends("fcm") if s.delivery_id in ids)
    assert sent == Counter({d: 1 for d in ids})


async def test_an_escalation_step_is_taken_by_the_critical_group_only(
    groups: tuple[Pipeline, Pipeline], sandbox: Sandbox, uid: str
) -> None:
    critical, _rest = groups
    nid = uuid.uuid4().hex
    number, mail = phone(), email()
    sms = delivery_bytes("sms", uid, number, lane="critical", notification_id=nid)
    mail_d = delivery_bytes("email", uid, mail, lane="critical", notification_id=nid)
    step = {
        "notification_id": nid,
        "recipient_id": uid,
        "lane": "critical",
        "due_at": datetime.now(UTC).isoformat(),
        "confirm_within_s": 1.0,
        "steps": [[json.loads(sms)], [json.loads(mail_d)]],
    }
    await produce(
        critical.bootstrap, critical.topic(ESCALATIONS), [json.dumps(step).encode()], uid.encode()
    )
    await wait_for_sends(sandbox, "sendgrid", mail, timeout_s=30)

    def mine(r: ConsumerRecord[bytes, bytes]) -> bool:
        return r.key == uid.encode()

    # The step and the one it scheduled: with both groups acting there would be three (and
    # the ladder would double at every further rung).
    steps = await read_all(critical, [ESCALATIONS], mine, 2)
    assert [len(value(s)["steps"]) for s in steps] == [2, 1]
    rungs = [
        delivery_topic(Channel.SMS, Lane.CRITICAL),
        delivery_topic(Channel.EMAIL, Lane.CRITICAL),
    ]
    planned = await read_all(critical, rungs, mine, 2, settle_s=1.0)
    assert sorted(value(r)["channel"] for r in planned) == ["email", "sms"]
    assert len(sandbox.sends("twilio", number)) == 1
    assert len(sandbox.sends("sendgrid", mail)) == 1


async def test_provider_feedback_is_acted_on_by_one_group(
    groups: tuple[Pipeline, Pipeline], sandbox: Sandbox, uid: str
) -> None:
    critical, _rest = groups
    address = email()
    sandbox.inject("sendgrid", target=address, error="bounce")  # accepted, then bounces
    raw = delivery_bytes("email", uid, address)
    topic = critical.topic(delivery_topic(Channel.EMAIL, Lane.HIGH))
    await produce(critical.bootstrap, topic, [raw], uid.encode())

    def mine(r: ConsumerRecord[bytes, bytes]) -> bool:
        return r.key == uid.encode()

    dead = await read_all(critical, [DLQ_DELIVERIES], mine, 1)
    assert len(dead) == 1, [dict(r.headers) for r in dead]
    failed = [
        r for r in await read_all(critical, [RECEIPTS], mine, 2) if value(r)["status"] == "failed"
    ]
    assert len(failed) == 1


async def test_a_read_confirmation_gets_one_receipt(
    groups: tuple[Pipeline, Pipeline], uid: str
) -> None:
    critical, rest = groups
    nid = uuid.uuid4().hex
    raw = delivery_bytes("in_app", uid, uid, lane="critical", notification_id=nid)
    topic = critical.topic(delivery_topic(Channel.IN_APP, Lane.CRITICAL))
    await produce(critical.bootstrap, topic, [raw], uid.encode())
    inbox = await collect(
        critical.bootstrap,
        [f"{critical.app_id}-inbox-changelog"],
        until=bool,
        keep=lambda r: r.key == uid.encode(),
    )
    assert inbox, "the critical group never stored the item"
    token = issue_token(uid, TEST_SECRET, timedelta(minutes=10), datetime.now(UTC))
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{rest.url}/inapp/ack",  # any worker of any group takes an ack
            json={"notification_ids": [nid], "action": "read"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 202

    def read_receipt(r: ConsumerRecord[bytes, bytes]) -> bool:
        return r.key == uid.encode() and value(r)["status"] == "read"

    got = [value(r) for r in await read_all(critical, [RECEIPTS], read_receipt, 1)]
    assert [(g["notification_id"], g["lane"], g.get("reason")) for g in got] == [
        (nid, "critical", None)
    ]
