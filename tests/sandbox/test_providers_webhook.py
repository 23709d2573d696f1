"""WebhookSender against the sandbox's webhook receiver (which verifies signatures)."""

import json
import time
from collections.abc import AsyncIterator

import pytest

from devenv.sandbox import Sandbox
from devenv.worker import free_port
from schemas.notifications import Delivery
from sinks.providers import Outcome, ProviderSettings
from sinks.providers.webhook import WebhookSender, verify
from tests.sandbox.deliveries import HANG_TIMEOUT_S, delivery


def make(cfg: ProviderSettings, **kw: object) -> WebhookSender:
    options: dict[str, object] = {
        "secret": cfg.webhook_secret.get_secret_value(),
        "timeout_s": cfg.send_timeout_s,
        **kw,
    }
    return WebhookSender(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def webhook(cfg: ProviderSettings) -> AsyncIterator[WebhookSender]:
    sender = make(cfg)
    yield sender
    await sender.aclose()


def hook(url: str, **kw: object) -> Delivery:
    return delivery("webhook", url, **kw)


async def test_send_posts_signed_json_and_is_recorded(
    sb: Sandbox, webhook: WebhookSender, cfg: ProviderSettings
) -> None:
    d = hook(sb.webhook_url("shop"))
    result = await webhook.send(d)
    assert result.outcome is Outcome.SENT
    [rec] = sb.sends("webhook")
    assert rec.target == "shop"
    assert rec.delivery_id == "dlv-1"
    assert rec.payload == {
        "delivery_id": "dlv-1",
        "notification_id": "ntf-1",
        "recipient_id": "usr-1",
        "category": "comment",
        "lane": "high",
        "title": "Ada commented",
        "body": "Nice <b>photo</b> & view",
        "url": "https://clarion.example/p/42",
        "image_url": "https://cdn.example/p/42.jpg",
        "data": {"post_id": "42"},
        "count": 1,
        "occurred_at": d.occurred_at.isoformat().replace("+00:00", "Z"),
        "created_at": d.created_at.isoformat().replace("+00:00", "Z"),
    }
    assert rec.header("Content-Type") == "application/json"
    signature = rec.header("Clarion-Signature")
    assert signature is not None and signature.startswith(
        f"t={rec.header('Clarion-Timestamp')},v1="
    )
    # The receiver verified it already (or it would have answered 401); check once more.
    body = json.dumps(rec.payload, separators=(",", ":"), sort_keys=True).encode()
    assert verify(cfg.webhook_secret.get_secret_value(), signature, body)


async def test_wrong_secret_is_refused_by_the_consumer(sb: Sandbox, cfg: ProviderSettings) -> None:
    sender = make(cfg, secret="x" * 32)
    try:
        result = await sender.send(hook(sb.webhook_url("shop")))
    finally:
        await sender.aclose()
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "http_401")
    assert sb.sends() == []


async def test_gone_endpoint_is_permanent_and_removes_the_target(
    sb: Sandbox, webhook: WebhookSender
) -> None:
    sb.inject("webhook", target="old", status=410)
    result = await webhook.send(hook(sb.webhook_url("old")))
    assert (result.outcome, result.reason, result.remove_target) == (
        Outcome.PERMANENT,
        "http_410",
        True,
    )
    assert result.detail == "endpoint disabled by consumer"
    assert (await webhook.send(hook(sb.webhook_url("new")))).outcome is Outcome.SENT


@pytest.mark.parametrize("status", [408, 429, 500, 503])
async def test_retryable_statuses_are_transient_with_retry_after(
    sb: Sandbox, webhook: WebhookSender, status: int
) -> None:
    sb.inject("webhook", status=status, retry_after_s=9, times=1)
    result = await webhook.send(hook(sb.webhook_url("shop")))
    assert (result.outcome, result.reason, result.retry_after_s) == (
        Outcome.TRANSIENT,
        f"http_{status}",
        9,
    )


@pytest.mark.parametrize(("status", "reason"), [(400, "http_400"), (413, "payload_too_large")])
async def test_other_client_errors_are_permanent(
    sb: Sandbox, webhook: WebhookSender, status: int, reason: str
) -> None:
    sb.inject("webhook", status=status, times=1)
    result = await webhook.send(hook(sb.webhook_url("shop")))
    assert (result.outcome, result.reason, result.remove_target) == (
        Outcome.PERMANENT,
        reason,
        False,
    )


async def test_hanging_consumer_is_a_transient_timeout(sb: Sandbox, cfg: ProviderSettings) -> None:
    sender = make(cfg, timeout_s=HANG_TIMEOUT_S)
    sb.inject("webhook", timeout=True, hang_s=2, times=1)
    start = time.monotonic()
    try:
        result = await sender.send(hook(sb.webhook_url("slow")))
    finally:
        await sender.aclose()
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "timeout")
    assert time.monotonic() - start < HANG_TIMEOUT_S + 1


async def test_unreachable_consumer_is_transient(webhook: WebhookSender) -> None:
    result = await webhook.send(hook(f"http://127.0.0.1:{free_port()}/hook"))
    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "connection_error")


async def test_unusable_url_is_permanent(webhook: WebhookSender) -> None:
    result = await webhook.send(hook("ftp://example.com/hook"))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "webhook:invalid_url")
