"""The real ``firebase-admin`` SDK against the sandbox.

Auth is the SDK's own: google-auth signs a JWT with the generated key and
exchanges it at the service account's ``token_uri`` (the sandbox).
"""

import time
from collections.abc import Iterator
from typing import Any

import firebase_admin
import pytest
from firebase_admin import messaging

from devenv.sandbox import Sandbox
from devenv.sandbox.clients import fcm_app, service_account_info


@pytest.fixture(scope="module")
def account() -> dict[str, Any]:
    # RSA generation is the slow part; the token_uri is patched per sandbox below.
    return service_account_info("http://placeholder/token", project_id="clarion-test")


@pytest.fixture
def app(sandbox: Sandbox, account: dict[str, Any]) -> Iterator[firebase_admin.App]:
    app = fcm_app(sandbox.fcm_url, {**account, "token_uri": sandbox.token_uri}, name="fcm-test")
    yield app
    firebase_admin.delete_app(app)


def note(fid: str = "device-token-1") -> messaging.Message:
    return messaging.Message(
        fid=fid,
        notification=messaging.Notification(title="Shipped", body="On its way"),
        data={"order": "42"},
    )


def test_send_returns_message_id_and_is_recorded(sandbox: Sandbox, app: firebase_admin.App) -> None:
    name = messaging.send(note(), app=app)
    [rec] = sandbox.sends("fcm")
    assert name == f"projects/clarion-test/messages/{rec.message_id}"
    assert rec.target == "device-token-1"
    assert rec.payload["notification"] == {"title": "Shipped", "body": "On its way"}
    # The bearer token came from the sandbox's token endpoint, not a stub.
    assert rec.headers["Authorization"].startswith("Bearer ya29.sandbox-")


def test_deprecated_token_field_and_topics_are_targets_too(
    sandbox: Sandbox, app: firebase_admin.App
) -> None:
    with pytest.warns(DeprecationWarning):
        legacy = messaging.Message(token="legacy-token", data={"k": "v"})
    messaging.send(legacy, app=app)
    messaging.send(messaging.Message(topic="news", data={"k": "v"}), app=app)
    assert [r.target for r in sandbox.sends("fcm")] == ["legacy-token", "topic:news"]
    with pytest.raises(firebase_admin.exceptions.InvalidArgumentError):
        messaging.send(note("has spaces"), app=app)


def test_unregistered_surfaces_as_unregistered_error(
    sandbox: Sandbox, app: firebase_admin.App
) -> None:
    sandbox.inject("fcm", target="stale-token", error="UNREGISTERED")
    with pytest.raises(messaging.UnregisteredError):
        messaging.send(note("stale-token"), app=app)
    assert messaging.send(note("fresh-token"), app=app)
    assert [r.target for r in sandbox.sends("fcm")] == ["fresh-token"]


def test_quota_exceeded_surfaces_as_quota_exceeded_error(
    sandbox: Sandbox, app: firebase_admin.App
) -> None:
    sandbox.inject("fcm", error="QUOTA_EXCEEDED", times=1)
    with pytest.raises(messaging.QuotaExceededError) as caught:
        messaging.send(note(), app=app)
    assert caught.value.http_response is not None
    assert caught.value.http_response.status_code == 429


def test_sdk_itself_honours_retry_after_on_429(sandbox: Sandbox, app: firebase_admin.App) -> None:
    # Worth knowing for the pipeline: firebase-admin's urllib3 Retry respects
    # Retry-After on 429/503, so with the header the caller never sees the error,
    # only the delay (up to 4 status retries).
    sandbox.inject("fcm", error="QUOTA_EXCEEDED", retry_after_s=1, times=1)
    start = time.monotonic()
    assert messaging.send(note(), app=app)
    assert time.monotonic() - start >= 1
    assert len(sandbox.sends("fcm")) == 1


def test_sender_id_mismatch_and_oversized_payload(
    sandbox: Sandbox, app: firebase_admin.App
) -> None:
    sandbox.inject("fcm", target="other-sender", error="SENDER_ID_MISMATCH")
    with pytest.raises(messaging.SenderIdMismatchError):
        messaging.send(note("other-sender"), app=app)
    big = messaging.Message(fid="device-token-1", data={"blob": "x" * 5000})
    with pytest.raises(firebase_admin.exceptions.InvalidArgumentError):
        messaging.send(big, app=app)
    assert sandbox.sends() == []


async def test_send_each_async_goes_through_the_sandbox(
    sandbox: Sandbox, app: firebase_admin.App
) -> None:
    sandbox.inject("fcm", target="stale-token", error="UNREGISTERED")
    batch = await messaging.send_each_async([note("t-1"), note("stale-token")], app=app)
    assert batch.success_count == 1
    assert isinstance(batch.responses[1].exception, messaging.UnregisteredError)
    assert [r.target for r in sandbox.sends("fcm")] == ["t-1"]
