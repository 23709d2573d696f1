"""build_senders from the CLARION_* environment provider_env writes, end to end."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from devenv.sandbox import Sandbox
from devenv.sandbox.env import provider_env
from schemas.common import Channel
from sinks.providers import Outcome, ProviderSettings, Sender, build_senders, close_senders
from tests.sandbox.deliveries import delivery


@pytest.fixture
async def senders(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[Channel, Sender]]:
    # Through the real environment variable names, as a worker process would read them.
    for key, value in provider_env(sandbox, tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CLARION_SEND_TIMEOUT_S", "3")
    built = build_senders(ProviderSettings())
    yield built
    await close_senders(built)


async def test_all_five_channels_reach_the_sandbox_and_carry_the_delivery_id(
    sandbox: Sandbox, senders: dict[Channel, Sender]
) -> None:
    assert set(senders) == {Channel.PUSH, Channel.EMAIL, Channel.SMS, Channel.WEBHOOK}
    cases = [
        ("d-fcm", delivery("push", "fcm-token", "fcm", delivery_id="d-fcm")),
        ("d-apns", delivery("push", "b" * 64, "apns", delivery_id="d-apns")),
        ("d-mail", delivery("email", "ada@example.com", delivery_id="d-mail")),
        ("d-sms", delivery("sms", "+15551230001", delivery_id="d-sms")),
        ("d-hook", delivery("webhook", sandbox.webhook_url("crm"), delivery_id="d-hook")),
    ]
    for _, d in cases:
        result = await senders[d.channel].send(d)
        assert result.outcome is Outcome.SENT, (d.delivery_id, result)
    by_provider = {r.provider: r.delivery_id for r in sandbox.sends()}
    assert by_provider == {
        "fcm": "d-fcm",
        "apns": "d-apns",
        "sendgrid": "d-mail",
        "twilio": "d-sms",
        "webhook": "d-hook",
    }
    # Out-of-process users count by it too.
    async with httpx.AsyncClient() as client:
        listed = (await client.get(f"{sandbox.base_url}/_sandbox/sends")).json()["sends"]
    assert sorted(s["delivery_id"] for s in listed) == sorted(c[0] for c in cases)


async def test_push_without_a_usable_platform_is_permanent(
    sandbox: Sandbox, senders: dict[Channel, Sender]
) -> None:
    result = await senders[Channel.PUSH].send(delivery("push", "tok", None))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "push:no_platform")


async def test_unconfigured_platform_and_channels(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = provider_env(sandbox, tmp_path)
    only_apns = {k: v for k, v in env.items() if k.startswith("CLARION_APNS_")}
    for key, value in only_apns.items():
        monkeypatch.setenv(key, value)
    built = build_senders(ProviderSettings())
    try:
        # Webhooks need their signing secret too (CLARION_WEBHOOK_SECRET), so only push.
        assert set(built) == {Channel.PUSH}
        result = await built[Channel.PUSH].send(delivery("push", "tok", "fcm"))
        assert (result.outcome, result.reason) == (Outcome.PERMANENT, "fcm:not_configured")
        ok = await built[Channel.PUSH].send(delivery("push", "c" * 64, "apns"))
        assert ok.outcome is Outcome.SENT
    finally:
        await close_senders(built)


async def test_expired_delivery_is_not_sent(
    sandbox: Sandbox, senders: dict[Channel, Sender]
) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    result = await senders[Channel.EMAIL].send(delivery("email", "a@example.com", expires_at=past))
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, "expired")
    assert sandbox.sends() == []


def test_half_configured_providers_fail_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLARION_APNS_KEY_FILE", str(tmp_path / "key.p8"))
    with pytest.raises(ValidationError, match="apns_key_id"):
        ProviderSettings()
    monkeypatch.delenv("CLARION_APNS_KEY_FILE")
    monkeypatch.setenv("CLARION_TWILIO_ACCOUNT_SID", "AC1")
    monkeypatch.setenv("CLARION_TWILIO_AUTH_TOKEN", "t")
    with pytest.raises(ValidationError, match="sms_from"):
        ProviderSettings()
    monkeypatch.setenv("CLARION_SMS_FROM", "+15550000000")
    monkeypatch.setenv("CLARION_WEBHOOK_SECRET", "too-short")
    with pytest.raises(ValidationError, match="webhook_secret"):
        ProviderSettings()


def test_sandbox_config_endpoint(sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url}/_sandbox/config"
    assert httpx.post(url, json={"colour": "blue"}).status_code == 400
    got = httpx.post(url, json={"sendgrid_event_webhook_url": "http://127.0.0.1:9/e"}).json()
    assert got["sendgrid_event_webhook_url"] == "http://127.0.0.1:9/e"
    assert httpx.get(url).json()["webhook_secret"] == sandbox.webhook_secret
    assert sandbox.urls()["sendgrid_webhook_public_key"] == sandbox.sendgrid_webhook_public_key


def test_provider_env_from_the_printed_urls(sandbox: Sandbox, tmp_path: Path) -> None:
    # A sandbox in another process is described by the JSON line it prints: same result.
    env = provider_env(dict(sandbox.urls()), tmp_path)
    assert env["CLARION_FCM_URL"] == sandbox.fcm_url
    assert env["CLARION_APNS_URL"] == sandbox.apns_url
    assert env["CLARION_WEBHOOK_SECRET"] == sandbox.webhook_secret
    assert Path(env["CLARION_APNS_KEY_FILE"]).read_text().startswith("-----BEGIN PRIVATE KEY")
    assert '"token_uri"' in Path(env["CLARION_FCM_CREDENTIALS_FILE"]).read_text()
