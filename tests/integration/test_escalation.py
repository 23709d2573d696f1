"""Escalation of critical notifications: an unconfirmed push escalates to SMS (and then
email); one the user confirms (POST /inapp/ack, action read) does not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devenv.sandbox import Sandbox
from logic.tokens import issue_token
from streams.catalog import RECEIPTS
from tests.factories import event_dict
from tests.integration.conftest import FAST_RULES, TEST_SECRET, Pipeline
from tests.integration.delivery_env import (
    delivering_pipeline,
    email,
    fcm_token,
    for_user,
    phone,
    records_where,
    set_contacts,
    value,
    wait_for_sends,
)
from tests.integration.kafka_io import produce_json

CONFIRM_WITHIN_S = 3


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox
) -> Iterator[Pipeline]:
    tmp = tmp_path_factory.mktemp("escalation")
    # The fast test rules, with security alerts escalating push → SMS → email every 3 s.
    rules = FAST_RULES.read_text().replace(
        "[categories.security_alert]\n",
        "[categories.security_alert]\n"
        f'escalate = ["push", "sms", "email"]\nconfirm_within_s = {CONFIRM_WITHIN_S}\n',
    )
    assert "escalate" in rules
    path = Path(tmp / "rules.toml")
    path.write_text(rules)
    with delivering_pipeline(kafka_bootstrap, tmp, sandbox, CLARION_RULES_PATH=str(path)) as p:
        yield p


async def user_with_everything(p: Pipeline, uid: str) -> dict[str, str]:
    points = {"token": fcm_token(), "email": email(), "phone": phone()}
    await set_contacts(
        p,
        uid,
        devices=[{"token": points["token"], "platform": "fcm"}],
        email=points["email"],
        phone=points["phone"],
    )
    return points


async def alert(p: Pipeline, uid: str) -> str:
    event = event_dict("security_alert", recipient_id=uid)
    await produce_json(p.bootstrap, p.topic("events.security"), event, uid)
    return str(event["event_id"])


async def test_unconfirmed_push_escalates_to_sms_then_email(
    pipeline: Pipeline, sandbox: Sandbox, uid: str
) -> None:
    points = await user_with_everything(pipeline, uid)
    await alert(pipeline, uid)
    [push] = await wait_for_sends(sandbox, "fcm", points["token"])
    # Only push (and in-app) at first: SMS and email wait for the confirmation window.
    assert sandbox.sends("twilio", points["phone"]) == []
    assert sandbox.sends("sendgrid", points["email"]) == []
    [sms] = await wait_for_sends(sandbox, "twilio", points["phone"], timeout_s=30)
    assert sms.received_at - push.received_at >= CONFIRM_WITHIN_S - 0.5
    assert sandbox.sends("sendgrid", points["email"]) == []
    [mail] = await wait_for_sends(sandbox, "sendgrid", points["email"], timeout_s=30)
    assert mail.received_at - sms.received_at >= CONFIRM_WITHIN_S - 0.5
    got = [value(r) for r in await records_where(pipeline, RECEIPTS, for_user(uid), n=6)]
    escalated = sorted(r["channel"] for r in got if r["status"] == "escalated")
    assert escalated == ["email", "sms"]


async def test_a_confirmed_push_does_not_escalate(
    pipeline: Pipeline, sandbox: Sandbox, uid: str
) -> None:
    points = await user_with_everything(pipeline, uid)
    await alert(pipeline, uid)
    [push] = await wait_for_sends(sandbox, "fcm", points["token"])
    # The app opens the notification and confirms it.
    token = issue_token(uid, TEST_SECRET, timedelta(minutes=10), datetime.now(UTC))
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{pipeline.url}/inapp/ack",
            json={
                "notification_ids": [push.payload["data"]["clarion_notification_id"]],
                "action": "read",
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 202, r.text
    # Well past two escalation steps: neither SMS nor email went out.
    await asyncio.sleep(2 * CONFIRM_WITHIN_S + 2)
    assert sandbox.sends("twilio", points["phone"]) == []
    assert sandbox.sends("sendgrid", points["email"]) == []
    got = [value(r) for r in await records_where(pipeline, RECEIPTS, for_user(uid), n=3)]
    assert "read" in {r["status"] for r in got}
    assert "escalated" not in {r["status"] for r in got}


async def test_ack_needs_a_valid_token_and_a_well_formed_body(pipeline: Pipeline) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{pipeline.url}/inapp/ack", json={"notification_ids": ["n"]})
        assert r.status_code == 401
        token = issue_token("someone", TEST_SECRET, timedelta(minutes=10), datetime.now(UTC))
        r = await client.post(
            f"{pipeline.url}/inapp/ack",
            json={"notification_ids": [], "action": "read"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 400
        assert "notification_ids" in r.json()["error"]
