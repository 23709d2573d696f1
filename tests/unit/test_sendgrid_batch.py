"""SendGrid batching without a network: the mail/send body for a batch, how deliveries are
grouped, what a batch's answer means for each delivery, and the sink's in-flight figure.
(The real SDK against the sandbox: tests/sandbox/test_providers_sendgrid.py.)"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from python_http_client.exceptions import HTTPError

from logic.pacing import Pacer
from schemas.common import Category, Channel, Lane
from schemas.notifications import Delivery, Target
from sinks.providers import ProviderSettings
from sinks.providers.base import Outcome
from sinks.providers.registry import sink_concurrency
from sinks.providers.sendgrid import (
    MAX_PERSONALIZATIONS,
    URL_HTML_TAG,
    URL_TAG,
    SendGridSender,
    build_request,
    mail_key,
)


def mail(i: int, **overrides: Any) -> Delivery:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "delivery_id": f"dlv-{i}",
        "notification_id": f"ntf-{i}",
        "recipient_id": f"usr-{i}",
        "category": Category.MARKETING,
        "lane": Lane.BULK,
        "channel": Channel.EMAIL,
        "target": Target(address=f"user{i}@example.com"),
        "title": "Spring sale",
        "body": "Everything <20% off> & more",
        "url": "https://shop.example/sale",
        "image_url": "https://cdn.example/sale.jpg",
        "occurred_at": now,
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
    }
    return Delivery(**{**fields, **overrides})


# --------------------------------------------------------------------------- the body


def test_a_batch_is_one_mail_with_a_personalization_and_custom_args_per_delivery() -> None:
    deliveries = [mail(0), mail(1, attempt=2), mail(2)]
    body = build_request(deliveries, "news@example.com")
    assert body["from"] == {"email": "news@example.com"}
    assert body["subject"] == "Spring sale"
    assert "custom_args" not in body  # per personalization: each recipient its own
    assert body["personalizations"] == [
        {
            "to": [{"email": d.target.address}],
            "custom_args": {
                "clarion_delivery_id": d.delivery_id,
                "clarion_notification_id": d.notification_id,
                "clarion_recipient_id": d.recipient_id,
                "clarion_attempt": str(d.attempt),
            },
        }
        for d in deliveries
    ]
    text, html = (c["value"] for c in body["content"])
    assert text == "Everything <20% off> & more\n\nhttps://shop.example/sale"
    assert "<p>Everything &lt;20% off&gt; &amp; more</p>" in html
    assert '<a href="https://shop.example/sale">' in html
    assert body["personalizations"][1]["custom_args"]["clarion_attempt"] == "2"
    json.dumps(body)  # what the SDK posts


def test_links_that_differ_become_substitutions() -> None:
    deliveries = [mail(i, url=f"https://shop.example/sale?u={i}&r=x") for i in range(3)]
    assert len({mail_key(d) for d in deliveries}) == 1  # still one mail
    body = build_request(deliveries, "news@example.com")
    text, html = (c["value"] for c in body["content"])
    assert text.endswith(f"\n\n{URL_TAG}")
    assert f'<a href="{URL_HTML_TAG}">{URL_HTML_TAG}</a>' in html
    for i, p in enumerate(body["personalizations"]):
        assert p["substitutions"] == {
            URL_TAG: f"https://shop.example/sale?u={i}&r=x",
            URL_HTML_TAG: f"https://shop.example/sale?u={i}&amp;r=x",  # escaped for HTML
        }


def test_what_groups_and_what_does_not() -> None:
    base = mail(0)
    assert mail_key(mail(1, attempt=3, recipient_id="other")) == mail_key(base)
    assert mail_key(mail(1, url="https://elsewhere.example")) == mail_key(base)
    for different in (
        mail(1, title="Other subject"),
        mail(1, body="Other text"),
        mail(1, image_url=None),
        mail(1, url=None),  # no link at all is other text
    ):
        assert mail_key(different) != mail_key(base)
    # Text that contains a tag would get links substituted into it: grouped by link.
    tagged = [mail(i, body=f"see {URL_TAG}", url=f"https://x.example/{i}") for i in (1, 2)]
    assert mail_key(tagged[0]) != mail_key(tagged[1])
    assert "substitutions" not in build_request(tagged[:1], "n@example.com")["personalizations"][0]


def test_a_body_holds_one_to_1000_deliveries_of_one_mail() -> None:
    assert len(build_request([mail(i) for i in range(1000)], "n@x")["personalizations"]) == 1000
    with pytest.raises(ValueError):
        build_request([mail(i) for i in range(MAX_PERSONALIZATIONS + 1)], "n@x")
    with pytest.raises(ValueError):
        build_request([], "n@x")
    with pytest.raises(ValueError):
        build_request([mail(0), mail(1, body="different")], "n@x")


# --------------------------------------------------------------------------- the sender


class Response:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = headers


class FakeClient:
    """Stands in for SendGridAPIClient.send: records bodies, answers by a rule."""

    def __init__(self, answer: Any = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.answer = answer or (lambda body: Response(202, {"X-Message-Id": "m"}))
        self.lock = threading.Lock()

    def send(self, body: dict[str, Any]) -> Response:
        with self.lock:
            self.bodies.append(body)
            n = len(self.bodies)
        result = self.answer(body)
        if isinstance(result, Response) and result.status_code == 202:
            return Response(202, {"X-Message-Id": f"msg-{n}"})
        return result  # type: ignore[no-any-return]

    def recipients(self) -> list[list[str]]:
        return [[p["to"][0]["email"] for p in b["personalizations"]] for b in self.bodies]


def make(client: FakeClient, **kw: Any) -> SendGridSender:
    sender = SendGridSender(api_key="SG.x", email_from="n@example.com", **kw)
    sender._client = client  # type: ignore[assignment]
    return sender


async def test_concurrent_sends_of_one_mail_are_one_request_each_with_its_own_result() -> None:
    client = FakeClient()
    sender = make(client)
    try:
        results = await asyncio.gather(*(sender.send(mail(i)) for i in range(2500)))
    finally:
        await sender.aclose()
    assert all(r.outcome is Outcome.SENT for r in results)
    assert [len(r) for r in client.recipients()] == [1000, 1000, 500]
    # Each delivery's result carries its own request's X-Message-Id.
    by_request = {r.provider_message_id for r in results}
    assert by_request == {"msg-1", "msg-2", "msg-3"}
    assert sorted(a for r in client.recipients() for a in r) == sorted(
        f"user{i}@example.com" for i in range(2500)
    )
    assert sender.requests == 3


async def test_different_mails_are_different_requests() -> None:
    client = FakeClient()
    sender = make(client)
    try:
        await asyncio.gather(*(sender.send(mail(i, body=f"text {i % 3}")) for i in range(30)))
    finally:
        await sender.aclose()
    assert sorted(len(r) for r in client.recipients()) == [10, 10, 10]


async def test_with_a_high_pace_500_paced_sends_are_one_request() -> None:
    # The sink takes one pacer token per delivery before it sends: as long as tokens are
    # there, every delivery reaches the coalescer in the same loop iteration.
    client = FakeClient()
    sender = make(client)
    pacer = Pacer(1_000_000)

    async def paced(d: Delivery) -> Outcome:
        await pacer.acquire()
        return (await sender.send(d)).outcome

    try:
        outcomes = await asyncio.gather(*(paced(mail(i)) for i in range(500)))
    finally:
        await sender.aclose()
    assert set(outcomes) == {Outcome.SENT}
    assert [len(r) for r in client.recipients()] == [500]


@pytest.mark.parametrize(
    ("status", "reason"), [(429, "http_429"), (500, "http_500"), (503, "http_503")]
)
async def test_a_transient_answer_is_every_deliverys_answer(status: int, reason: str) -> None:
    def answer(body: dict[str, Any]) -> Response:
        raise HTTPError(status, "x", b'{"errors":[{"message":"busy"}]}', {})

    client = FakeClient(answer)
    sender = make(client)
    try:
        results = await asyncio.gather(*(sender.send(mail(i)) for i in range(50)))
    finally:
        await sender.aclose()
    assert {(r.outcome, r.reason, r.detail) for r in results} == {
        (Outcome.TRANSIENT, reason, "busy")
    }
    assert len(client.bodies) == 1  # no second try here: the sink retries (retry topic)


async def test_a_refused_batch_is_sent_again_one_by_one_so_only_the_bad_address_fails() -> None:
    bad = "user7@example.com"

    def answer(body: dict[str, Any]) -> Response:
        if any(p["to"][0]["email"] == bad for p in body["personalizations"]):
            raise HTTPError(400, "x", f'{{"errors":[{{"message":"bad {bad}"}}]}}'.encode(), {})
        return Response(202, {})

    client = FakeClient(answer)
    sender = make(client)
    try:
        results = await asyncio.gather(*(sender.send(mail(i)) for i in range(20)))
    finally:
        await sender.aclose()
    failed = [i for i, r in enumerate(results) if not r.sent]
    assert failed == [7]
    assert (results[7].outcome, results[7].reason) == (Outcome.PERMANENT, "http_400")
    assert results[7].detail is not None and bad not in results[7].detail  # masked
    recipients = client.recipients()
    assert len(recipients[0]) == 20  # the batch, then each delivery alone
    assert sorted(a for r in recipients[1:] for a in r) == sorted(recipients[0])
    assert all(len(r) == 1 for r in recipients[1:])


async def test_a_single_delivery_refused_is_not_sent_twice() -> None:
    def answer(body: dict[str, Any]) -> Response:
        raise HTTPError(400, "x", b'{"errors":[{"message":"Invalid email"}]}', {})

    client = FakeClient(answer)
    sender = make(client)
    try:
        result = await sender.send(mail(0))
    finally:
        await sender.aclose()
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "http_400")
    assert len(client.bodies) == 1


async def test_an_unexpected_error_is_a_transient_result_for_its_batch_only() -> None:
    def answer(body: dict[str, Any]) -> Response:
        if body["subject"] == "boom":
            raise RuntimeError("SDK bug")
        return Response(202, {})

    client = FakeClient(answer)
    sender = make(client)
    try:
        results = await asyncio.gather(
            *(sender.send(mail(i, title="boom" if i % 2 else "fine")) for i in range(10))
        )
    finally:
        await sender.aclose()
    assert {r.reason for r in results[1::2]} == {"error:RuntimeError"}
    assert all(r.sent for r in results[0::2])


async def test_the_timeout_bounds_the_request_not_the_wait_for_a_thread() -> None:
    # One thread, 0.3 s per request, 0.5 s timeout: the third mail waits 0.6 s for its
    # turn, yet none times out (timed from the submission, the last would have).
    def answer(body: dict[str, Any]) -> Response:
        threading.Event().wait(0.3)
        return Response(202, {})

    client = FakeClient(answer)
    sender = make(client, threads=1, timeout_s=0.5)
    try:
        results = await asyncio.gather(*(sender.send(mail(i, body=f"m{i}")) for i in range(3)))
    finally:
        await sender.aclose()
    assert [r.reason for r in results] == [None, None, None]


async def test_an_expired_delivery_is_never_queued() -> None:
    client = FakeClient()
    sender = make(client)
    past = datetime.now(UTC) - timedelta(seconds=1)
    try:
        result = await sender.send(mail(0, expires_at=past))
    finally:
        await sender.aclose()
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "expired")
    assert client.bodies == []


def test_batch_size_bounds() -> None:
    for bad in (0, MAX_PERSONALIZATIONS + 1):
        with pytest.raises(ValueError):
            SendGridSender(api_key="SG.x", email_from="n@example.com", batch_size=bad)


# --------------------------------------------------------------------------- the sink


def test_the_email_sink_keeps_two_batches_in_flight_when_sendgrid_is_configured() -> None:
    on = ProviderSettings(sendgrid_api_key="SG.x")  # type: ignore[call-arg]
    assert sink_concurrency(on, Channel.EMAIL, 256) == 2000
    small = ProviderSettings(sendgrid_api_key="SG.x", sendgrid_batch_size=10)  # type: ignore[call-arg]
    assert sink_concurrency(small, Channel.EMAIL, 256) == 256  # raised, never lowered
    assert sink_concurrency(on, Channel.SMS, 256) == 256
    off = ProviderSettings(sendgrid_api_key=None)  # type: ignore[call-arg]
    assert sink_concurrency(off, Channel.EMAIL, 256) == 256
