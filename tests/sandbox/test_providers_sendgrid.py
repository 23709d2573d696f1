"""SendGridSender (sync SDK on a thread pool) and the signed Event Webhook, against the sandbox."""

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from devenv.sandbox import Sandbox
from devenv.sandbox.sendgrid import public_key_b64
from schemas.notifications import Delivery
from sinks.providers import Outcome, ProviderSettings
from sinks.providers.sendgrid import SendGridSender, parse_events
from tests.sandbox.deliveries import HANG_TIMEOUT_S, delivery

ADDRESS = "ada@example.com"


def make(cfg: ProviderSettings, **kw: object) -> SendGridSender:
    assert cfg.sendgrid_api_key is not None
    options: dict[str, object] = {
        "api_key": cfg.sendgrid_api_key.get_secret_value(),
        "email_from": cfg.email_from,
        "base_url": cfg.sendgrid_url,
        "timeout_s": cfg.send_timeout_s,
        "threads": 4,
        **kw,
    }
    return SendGridSender(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def sendgrid(cfg: ProviderSettings) -> AsyncIterator[SendGridSender]:
    sender = make(cfg)
    yield sender
    await sender.aclose()


def mail(address: str = ADDRESS, **kw: object) -> Delivery:
    return delivery("email", address, **kw)


async def test_send_records_mail_with_custom_args_and_message_id(
    sb: Sandbox, sendgrid: SendGridSender
) -> None:
    result = await sendgrid.send(mail())
    assert result.outcome is Outcome.SENT
    [rec] = sb.sends("sendgrid")
    assert result.provider_message_id == rec.message_id  # X-Message-Id
    assert rec.delivery_id == "dlv-1"
    body = rec.payload
    assert body["from"] == {"email": "notifications@example.com"}
    [personalization] = body["personalizations"]
    assert personalization["to"] == [{"email": ADDRESS}]
    assert body["subject"] == "Ada commented"
    # On the personalization: each recipient of a batched request has its own.
    assert "custom_args" not in body and "substitutions" not in personalization
    assert personalization["custom_args"] == {
        "clarion_delivery_id": "dlv-1",
        "clarion_notification_id": "ntf-1",
        "clarion_recipient_id": "usr-1",
        "clarion_attempt": "0",  # echoed in feedback: the dead letter's attempts header
    }
    text, html = (c["value"] for c in body["content"])
    assert text == "Nice <b>photo</b> & view\n\nhttps://clarion.example/p/42"
    assert "<p>Nice &lt;b&gt;photo&lt;/b&gt; &amp; view</p>" in html  # escaped, not markup
    assert '<img src="https://cdn.example/p/42.jpg"' in html
    assert '<a href="https://clarion.example/p/42">' in html
    assert rec.headers["Authorization"] == "Bearer SG.sandbox"


async def test_rate_limit_is_transient_with_delay_from_reset_epoch(
    sb: Sandbox, sendgrid: SendGridSender
) -> None:
    sb.inject("sendgrid", status=429, retry_after_s=30, times=1)
    result = await sendgrid.send(mail())
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "http_429")
    assert result.retry_after_s is not None and 28 <= result.retry_after_s <= 31
    assert (await sendgrid.send(mail())).outcome is Outcome.SENT


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_transient(
    sb: Sandbox, sendgrid: SendGridSender, status: int
) -> None:
    sb.inject("sendgrid", status=status, times=1)
    result = await sendgrid.send(mail())
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, f"http_{status}")
    assert result.detail == "sandbox injected fault"


async def test_other_client_errors_are_permanent(sb: Sandbox, sendgrid: SendGridSender) -> None:
    sb.inject("sendgrid", target="bad@example.com", status=400, error="Invalid email")
    result = await sendgrid.send(mail("bad@example.com"))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "http_400")
    # The provider's message is kept; the address never appears whole.
    assert result.detail == "Invalid email"


async def test_oversized_mail_is_permanent_payload_too_large(
    sb: Sandbox, sendgrid: SendGridSender
) -> None:
    # Plain text and HTML copies of a 16 MiB body: over SendGrid's 30 MB per message.
    result = await sendgrid.send(mail(body="x" * (16 * 1024 * 1024)))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "payload_too_large")
    assert sb.sends() == []


async def test_hanging_sendgrid_is_a_transient_timeout(sb: Sandbox, cfg: ProviderSettings) -> None:
    sender = make(cfg, timeout_s=HANG_TIMEOUT_S)
    sb.inject("sendgrid", timeout=True, hang_s=2, times=1)
    start = time.monotonic()
    try:
        result = await sender.send(mail())
    finally:
        await sender.aclose()
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "timeout")
    assert time.monotonic() - start < HANG_TIMEOUT_S + 1


async def test_a_backlog_behind_the_threads_does_not_time_out_mails_on_the_wire(
    sb: Sandbox, cfg: ProviderSettings
) -> None:
    # 12 sends at once on 2 threads, 0.4 s each: the last start ~2 s after submission, past
    # the 1 s timeout. Counted from the submission, those were abandoned mid-request (the
    # sandbox still queued them) and reported as timeouts, so a retry mailed them twice.
    sender = make(cfg, timeout_s=1.0, threads=2)
    sb.inject("sendgrid", latency_ms=400)
    try:
        results = await asyncio.gather(
            # Different mails: 12 requests, not one batch.
            *(sender.send(mail(delivery_id=f"dlv-{i}", body=f"text {i}")) for i in range(12))
        )
    finally:
        await sender.aclose()
    assert [r.reason for r in results if r.outcome is not Outcome.SENT] == []
    assert sorted(r.delivery_id or "" for r in sb.sends("sendgrid")) == sorted(
        f"dlv-{i}" for i in range(12)
    )


class EventReceiver:
    """A tiny aiohttp app standing in for Clarion's Event Webhook endpoint."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            await self.requests.put((await request.read(), dict(request.headers)))
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/sendgrid/events", receive)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/sendgrid/events"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[EventReceiver]:
    r = EventReceiver()
    await r.start()
    yield r
    await r.stop()


async def test_bounce_is_accepted_then_reported_by_a_signed_event_webhook(
    sb: Sandbox, sendgrid: SendGridSender, receiver: EventReceiver
) -> None:
    # Configured over HTTP, as a demo or a worker in another process would.
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{sb.base_url}/_sandbox/config", json={"sendgrid_event_webhook_url": receiver.url}
        )
    assert r.status_code == 200 and sb.sendgrid_event_webhook_url == receiver.url
    sb.inject("sendgrid", target="gone@example.com", error="bounce")

    result = await sendgrid.send(mail("gone@example.com"))
    assert result.outcome is Outcome.SENT  # 202: queued; the bounce comes later
    [rec] = sb.sends("sendgrid")

    body, headers = await asyncio.wait_for(receiver.requests.get(), timeout=5)
    events = parse_events(
        body,
        headers["X-Twilio-Email-Event-Webhook-Signature"],
        headers["X-Twilio-Email-Event-Webhook-Timestamp"],
        sb.sendgrid_webhook_public_key,
    )
    [event] = events
    assert event["event"] == "bounce" and event["type"] == "bounce"
    assert event["email"] == "gone@example.com"
    assert event["reason"].startswith("550 5.1.1")
    assert event["sg_message_id"].startswith(f"{result.provider_message_id}.")
    assert rec.message_id == result.provider_message_id
    assert (event["clarion_delivery_id"], event["clarion_notification_id"]) == ("dlv-1", "ntf-1")
    assert event["clarion_recipient_id"] == "usr-1"
    assert event["clarion_attempt"] == "0"
    assert abs(event["timestamp"] - time.time()) < 60


async def test_bounce_events_from_others_or_tampered_are_refused(
    sb: Sandbox, sendgrid: SendGridSender, receiver: EventReceiver
) -> None:
    sb.sendgrid_event_webhook_url = receiver.url
    sb.inject("sendgrid", error="bounce", times=1)
    assert (await sendgrid.send(mail())).outcome is Outcome.SENT
    body, headers = await asyncio.wait_for(receiver.requests.get(), timeout=5)
    signature = headers["X-Twilio-Email-Event-Webhook-Signature"]
    timestamp = headers["X-Twilio-Email-Event-Webhook-Timestamp"]
    key = sb.sendgrid_webhook_public_key
    assert parse_events(body, signature, timestamp, key)[0]["email"] == ADDRESS

    tampered = json.dumps([{**json.loads(body)[0], "email": "x@example.com"}]).encode()
    with pytest.raises(ValueError):
        parse_events(tampered, signature, timestamp, key)
    with pytest.raises(ValueError):
        parse_events(body, signature, str(int(timestamp) + 1), key)
    someone_else = public_key_b64(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError):
        parse_events(body, signature, timestamp, someone_else)
    with pytest.raises(ValueError):
        parse_events(body, "not base64!", timestamp, key)


# --------------------------------------------------------------------------- batches


def campaign(n: int, **kw: object) -> list[Delivery]:
    """n deliveries of one marketing mail, each to its own address with its own ids."""
    return [
        mail(
            f"user{i}@example.com",
            delivery_id=f"dlv-{i}",
            notification_id=f"ntf-{i}",
            recipient_id=f"usr-{i}",
            attempt=i % 3,
            **kw,
        )
        for i in range(n)
    ]


async def test_concurrent_sends_of_one_mail_are_one_request_per_1000(
    sb: Sandbox, sendgrid: SendGridSender
) -> None:
    deliveries = campaign(2500)
    results = await asyncio.gather(*(sendgrid.send(d) for d in deliveries))
    assert all(r.outcome is Outcome.SENT for r in results)
    assert sb.requests("sendgrid") == 3  # ceil(2500 / 1000)
    records = sb.sends("sendgrid")
    # One record per personalization: every delivery exactly once, with its own args.
    assert sorted(r.delivery_id or "" for r in records) == sorted(d.delivery_id for d in deliveries)
    by_id = {d.delivery_id: d for d in deliveries}
    for rec in records:
        d = by_id[rec.delivery_id or ""]
        [p] = rec.payload["personalizations"]
        assert p["to"] == [{"email": d.target.address}] and rec.target == d.target.address
        assert p["custom_args"] == {
            "clarion_delivery_id": d.delivery_id,
            "clarion_notification_id": d.notification_id,
            "clarion_recipient_id": d.recipient_id,
            "clarion_attempt": str(d.attempt),
        }
    # A delivery's message id is its request's X-Message-Id.
    assert len({r.message_id for r in records}) == 3
    assert {r.provider_message_id for r in results} == {r.message_id for r in records}
    # And over HTTP, for benchmarks and other processes.
    async with httpx.AsyncClient() as client:
        got = await client.get(
            f"{sb.base_url}/_sandbox/requests/count", params={"provider": "sendgrid"}
        )
    assert got.json() == {"count": 3}


async def test_links_that_differ_go_as_substitutions_in_one_request(
    sb: Sandbox, sendgrid: SendGridSender
) -> None:
    deliveries = [
        mail(f"u{i}@example.com", delivery_id=f"dlv-{i}", url=f"https://x.example/?u={i}")
        for i in range(5)
    ]
    assert all(r.sent for r in await asyncio.gather(*(sendgrid.send(d) for d in deliveries)))
    assert sb.requests("sendgrid") == 1
    for rec in sb.sends("sendgrid"):
        i = (rec.delivery_id or "").removeprefix("dlv-")
        [p] = rec.payload["personalizations"]
        assert p["substitutions"]["-clarion_url-"] == f"https://x.example/?u={i}"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [({"status": 429, "retry_after_s": 30}, "http_429"), ({"status": 503}, "http_503")],
)
async def test_a_rate_limited_or_failing_batch_is_transient_for_every_delivery(
    sb: Sandbox, sendgrid: SendGridSender, fault: dict[str, object], reason: str
) -> None:
    sb.inject("sendgrid", times=1, **fault)
    results = await asyncio.gather(*(sendgrid.send(d) for d in campaign(300)))
    assert {(r.outcome, r.reason) for r in results} == {(Outcome.TRANSIENT, reason)}
    assert sb.requests("sendgrid") == 1 and sb.sends() == []
    if reason == "http_429":
        assert all(r.retry_after_s is not None and r.retry_after_s > 25 for r in results)


async def test_one_bad_address_fails_only_its_own_delivery(
    sb: Sandbox, sendgrid: SendGridSender
) -> None:
    # SendGrid refuses a whole request over one bad address: the batch is sent again one
    # delivery at a time, so the other 299 are not dead-lettered with it.
    sb.inject("sendgrid", target="user42@example.com", status=400, error="Invalid email")
    deliveries = campaign(300)
    results = await asyncio.gather(*(sendgrid.send(d) for d in deliveries))
    failed = [
        (d.delivery_id, r.outcome, r.reason)
        for d, r in zip(deliveries, results, strict=True)
        if not r.sent
    ]
    assert failed == [("dlv-42", Outcome.PERMANENT, "http_400")]
    assert sorted(r.delivery_id or "" for r in sb.sends("sendgrid")) == sorted(
        d.delivery_id for d in deliveries if d.delivery_id != "dlv-42"
    )
    assert sb.requests("sendgrid") == 1 + 300  # the refused batch, then each alone


async def test_a_bounce_in_a_batch_reports_that_recipients_own_ids(
    sb: Sandbox, sendgrid: SendGridSender, receiver: EventReceiver
) -> None:
    sb.sendgrid_event_webhook_url = receiver.url
    sb.inject("sendgrid", target="user3@example.com", error="bounce")
    results = await asyncio.gather(*(sendgrid.send(d) for d in campaign(10)))
    assert all(r.sent for r in results) and sb.requests("sendgrid") == 1
    body, headers = await asyncio.wait_for(receiver.requests.get(), timeout=5)
    [event] = parse_events(
        body,
        headers["X-Twilio-Email-Event-Webhook-Signature"],
        headers["X-Twilio-Email-Event-Webhook-Timestamp"],
        sb.sendgrid_webhook_public_key,
    )
    assert (event["email"], event["clarion_delivery_id"]) == ("user3@example.com", "dlv-3")
    assert (event["clarion_recipient_id"], event["clarion_attempt"]) == ("usr-3", "0")
    assert event["sg_message_id"].startswith(f"{results[3].provider_message_id}.")


async def test_mails_arriving_while_one_is_on_the_wire_fill_the_next_request(
    sb: Sandbox, sendgrid: SendGridSender
) -> None:
    sb.inject("sendgrid", latency_ms=200)
    deliveries = campaign(400)
    first = asyncio.ensure_future(sendgrid.send(deliveries[0]))
    await asyncio.sleep(0.05)  # its request is on the wire
    rest = []
    for chunk in range(1, 400, 100):  # the others arrive in four waves meanwhile
        rest += [asyncio.ensure_future(sendgrid.send(d)) for d in deliveries[chunk : chunk + 100]]
        await asyncio.sleep(0.02)
    results = await asyncio.gather(first, *rest)
    assert all(r.sent for r in results)
    assert sb.requests("sendgrid") == 2  # [the first], then the 399 that waited
