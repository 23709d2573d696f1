"""The real ``twilio`` SDK against the sandbox, via ``client.api.base_url``."""

import pytest
from twilio.base.exceptions import TwilioRestException

from devenv.sandbox import Sandbox
from devenv.sandbox.clients import twilio_client

SID = "AC" + "1" * 32


def test_message_is_queued_with_a_sid_and_recorded(sandbox: Sandbox) -> None:
    client = twilio_client(sandbox.twilio_url, account_sid=SID, auth_token="tok")
    msg = client.messages.create(to="+15551230001", from_="+15557654321", body="Hi Ada")
    assert msg.status == "queued"
    assert msg.sid is not None and msg.sid.startswith("SM") and len(msg.sid) == 34
    assert msg.account_sid == SID
    [rec] = sandbox.sends("twilio")
    assert rec.target == "+15551230001"
    assert rec.payload == {"To": "+15551230001", "From": "+15557654321", "Body": "Hi Ada"}
    assert rec.headers["Authorization"].startswith("Basic ")


def test_stop_error_surfaces_as_twilio_rest_exception(sandbox: Sandbox) -> None:
    sandbox.inject("twilio", target="+15551230002", error=21610)
    client = twilio_client(sandbox.twilio_url)
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to="+15551230002", from_="+15557654321", body="x")
    assert caught.value.code == 21610
    assert caught.value.status == 400
    assert sandbox.sends() == []


def test_rate_limit_is_20429_with_http_429(sandbox: Sandbox) -> None:
    sandbox.inject("twilio", error=20429, retry_after_s=2, times=1)
    client = twilio_client(sandbox.twilio_url)
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to="+15551230003", from_="+15557654321", body="x")
    assert (caught.value.code, caught.value.status) == (20429, 429)
    assert client.messages.create(to="+15551230003", from_="+1555", body="x").status == "queued"


def test_invalid_to_is_21211_without_any_fault(sandbox: Sandbox) -> None:
    client = twilio_client(sandbox.twilio_url)
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to="not-a-number", from_="+15557654321", body="x")
    assert caught.value.code == 21211
