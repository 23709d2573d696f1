"""The real ``sendgrid`` SDK against the sandbox (host= is its documented override)."""

import time

import pytest
from python_http_client.exceptions import HTTPError
from sendgrid.helpers.mail import Mail

from devenv.sandbox import Sandbox
from devenv.sandbox.clients import sendgrid_client


def message(to: str = "ada@example.com") -> Mail:
    return Mail(
        from_email="clarion@example.com",
        to_emails=to,
        subject="Your order shipped",
        plain_text_content="It is on its way.",
    )


def test_send_is_queued_and_recorded(sandbox: Sandbox) -> None:
    client = sendgrid_client(sandbox.sendgrid_url, api_key="SG.test-key")
    response = client.send(message())
    assert response.status_code == 202
    [rec] = sandbox.sends("sendgrid")
    assert rec.target == "ada@example.com"
    assert rec.payload["subject"] == "Your order shipped"
    assert rec.headers["Authorization"] == "Bearer SG.test-key"
    assert response.headers["X-Message-Id"] == rec.message_id


def test_rate_limit_surfaces_as_http_error_with_reset_header(sandbox: Sandbox) -> None:
    sandbox.inject("sendgrid", status=429, retry_after_s=30, times=1)
    client = sendgrid_client(sandbox.sendgrid_url)
    with pytest.raises(HTTPError) as caught:
        client.send(message())
    assert caught.value.status_code == 429
    reset = int(caught.value.headers["X-RateLimit-Reset"])
    assert time.time() + 25 < reset <= time.time() + 31
    assert sandbox.sends() == []
    # times=1: the retry goes through.
    assert client.send(message()).status_code == 202


def test_too_many_personalizations_is_a_400(sandbox: Sandbox) -> None:
    mail = message()
    body = mail.get()
    body["personalizations"] = body["personalizations"] * 1001
    client = sendgrid_client(sandbox.sendgrid_url)
    with pytest.raises(HTTPError) as caught:
        client.client.mail.send.post(request_body=body)
    assert caught.value.status_code == 400


def test_each_personalization_is_recorded_and_the_request_counted_once(sandbox: Sandbox) -> None:
    body = message().get()
    body["personalizations"] = [
        {"to": [{"email": f"u{i}@example.com"}], "custom_args": {"clarion_delivery_id": f"d{i}"}}
        for i in range(3)
    ]
    client = sendgrid_client(sandbox.sendgrid_url)
    response = client.client.mail.send.post(request_body=body)
    assert response.status_code == 202
    records = sandbox.sends("sendgrid")
    assert [(r.target, r.delivery_id) for r in records] == [
        (f"u{i}@example.com", f"d{i}") for i in range(3)
    ]
    assert {r.message_id for r in records} == {response.headers["X-Message-Id"]}
    assert all(len(r.payload["personalizations"]) == 1 for r in records)
    assert sandbox.requests("sendgrid") == 1
    sandbox.inject("sendgrid", target="u1@example.com", status=400, times=1)
    with pytest.raises(HTTPError):
        client.client.mail.send.post(request_body=body)  # one bad address: all refused
    assert sandbox.requests("sendgrid") == 2 and len(sandbox.sends("sendgrid")) == 3
    sandbox.clear_sends()
    assert sandbox.requests("sendgrid") == 0
