"""The httpx plumbing under the webhook and FCM clients (sinks/providers/clients.py): the
aiohttp transport's errors read as httpx's own, and the cookie jar's skip of responses
that set no cookie."""

from __future__ import annotations

import socket

import httpx
import pytest

from sinks.providers.clients import aiohttp_transport, http_transport, skip_cookieless_responses


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens on it any more


async def test_a_refused_connection_is_a_connect_error_not_a_timeout() -> None:
    # httpx-aiohttp maps it to ConnectTimeout; the webhook sender reports a refused
    # connection as "connection_error" and a timeout as "timeout".
    async with httpx.AsyncClient(transport=aiohttp_transport(2)) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(f"http://127.0.0.1:{_closed_port()}/")
    assert not isinstance(caught.value, httpx.TimeoutException)


async def test_http_transport_chooses_by_name() -> None:
    aio = http_transport("aiohttp", 8, 4)
    pooled = http_transport("httpcore", 8, 4)
    try:
        assert type(aio).__module__ == "sinks.providers.clients"
        assert pooled.pools == 2  # type: ignore[attr-defined]
    finally:
        await aio.aclose()
        await pooled.aclose()


def _answer(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/login":
        return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"})
    return httpx.Response(200, text="ok")


async def test_cookies_still_kept_when_a_response_sets_one() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(_answer), cookies={"kept": "1"}
    ) as client:
        skip_cookieless_responses(client)
        assert client.cookies.get("kept") == "1"  # carried over into the new jar
        await client.get("https://example.test/plain")
        assert dict(client.cookies) == {"kept": "1"}
        await client.get("https://example.test/login")
        assert client.cookies.get("session") == "abc"
        sent = await client.get("https://example.test/plain")
        assert "session=abc" in sent.request.headers["cookie"]


def test_apns_header_blocks_carry_literal_values_that_decode_back() -> None:
    from hpack import Decoder

    from sinks.providers.clients import _literal_encoder

    encoder = _literal_encoder()
    token = "a1b2c3d4" * 8
    headers = [(":method", "POST"), (":path", f"/3/device/{token}"), ("apns-topic", "app")]
    block = encoder.encode(headers)
    assert f"/3/device/{token}".encode() in block  # not Huffman-coded
    decoded = Decoder().decode(block)
    assert [(str(k), str(v)) for k, v in decoded] == headers
    again = encoder.encode(headers)
    assert len(again) < len(block)  # repeated headers are still sent as table references
