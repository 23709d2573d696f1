"""How each real SDK is built and pointed at a base URL: configuration, not stubs.

Production uses the providers' default URLs; the sandbox (``devenv/sandbox``) is reached
by changing only the URL, so every request still goes through the SDK's own code.

* sendgrid: ``SendGridAPIClient(api_key=..., host=url)`` -- a documented argument.
* twilio: ``client.api.base_url = url`` -- the public ``base_url`` attribute of the
  ``Api`` domain; every request URI is built from it. ``edge``/``region`` must stay
  unset, or twilio rewrites the host into ``api.<edge>.<region>.twilio.com``.
* firebase-admin: the FCM send URL is the hard-coded ``_MessagingService.FCM_URL`` with
  no override (checked in 7.7), so a minimal subclass sets only its ``_fcm_url`` (and
  the async client's retry policy) and is registered as the app's messaging service.
* aioapns: no host option, and its proxy option is broken on Python 3.11 (it hands
  asyncio's ``TransportSocket`` to ``create_connection(sock=...)``), so a subclass of its
  protocol class overrides ``APNS_SERVER``/``APNS_PORT`` (and survives late answers to
  requests that timed out; see ``_apns_protocol``).

SDK imports are local so importing this module stays cheap (httpx is Clarion's own
dependency, and ``PooledTransport`` and ``aiohttp_transport`` are transports of it).
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx

GOOGLE_FCM_URL = "https://fcm.googleapis.com"

if TYPE_CHECKING:
    import firebase_admin
    from aioapns import APNs
    from firebase_admin._retry import HttpxRetry
    from sendgrid import SendGridAPIClient
    from twilio.http import AsyncHttpClient
    from twilio.rest import Client as TwilioClient


def sendgrid_client(
    base_url: str, api_key: str, timeout_s: float | None = None
) -> SendGridAPIClient:
    from sendgrid import SendGridAPIClient

    client = SendGridAPIClient(api_key=api_key, host=base_url)
    # python_http_client copies the timeout into every child client it builds; without
    # one a hung request would pin its worker thread forever.
    client.client.timeout = timeout_s
    return client


def twilio_client(
    base_url: str,
    account_sid: str,
    auth_token: str,
    http_client: AsyncHttpClient | None = None,
) -> TwilioClient:
    from twilio.rest import Client

    client = Client(account_sid, auth_token, http_client=http_client)
    client.api.base_url = base_url.rstrip("/")
    return client


def fcm_app(
    service_account: dict[str, Any] | str | Path,
    *,
    base_url: str = GOOGLE_FCM_URL,
    name: str,
    timeout_s: float | None = None,
    async_retry: HttpxRetry | None = None,
) -> firebase_admin.App:
    """A firebase app whose messaging service sends to ``base_url``.

    ``async_retry`` replaces the async (httpx) client's retry policy; None keeps the SDK's
    (4 retries on 500/503 with backoff).
    """
    import firebase_admin
    from firebase_admin import _http_client, _utils, credentials, messaging

    info: dict[str, Any] = (
        service_account
        if isinstance(service_account, dict)
        else json.loads(Path(service_account).read_text())
    )
    certificate = credentials.Certificate(info)
    google = base_url.rstrip("/") == GOOGLE_FCM_URL
    if not google:
        # Only off Google: after each token refresh google-auth (2.62) looks up a "regional
        # access boundary" at iamcredentials.googleapis.com in a background thread. A
        # sandbox credential must never leave loopback; real credentials keep the lookup.
        certificate._g_credential = _loopback_only_credentials(info)
    options = {"httpTimeout": timeout_s} if timeout_s is not None else {}
    app = firebase_admin.initialize_app(certificate, options=options, name=name)
    fcm_url = f"{base_url.rstrip('/')}/v1/projects/{{0}}/messages:send"

    class MessagingService(messaging._MessagingService):
        # Only the URL and the async retry policy differ; auth, encoding, error mapping
        # are the SDK's. (Overriding the FCM_URL class attribute is not enough: __init__
        # reads ``_MessagingService.FCM_URL`` by explicit class name.)
        def __init__(self, app: firebase_admin.App) -> None:
            super().__init__(app)
            if not google:
                self._fcm_url = fcm_url.format(self._project_id)
            if async_retry is not None:
                self._async_client = _http_client.HttpxAsyncClient(
                    credential=self._credential,
                    timeout=app.options.get("httpTimeout", _http_client.DEFAULT_TIMEOUT_SECONDS),
                    retry_config=async_retry,
                )

        def close(self) -> None:
            # The SDK closes its httpx client with asyncio.run(), which fails inside a
            # running loop; async owners await ``async_client.aclose()`` before deleting.
            if not self._async_client.async_client.is_closed:
                super().close()

    # Same per-app lazy cache ``messaging.send(app=...)`` reads: registering first makes
    # every messaging call on this app use the subclass.
    _utils.get_app_service(app, messaging._MESSAGING_ATTRIBUTE, MessagingService)
    return app


def fcm_pool(app: firebase_admin.App, transport: httpx.AsyncBaseTransport) -> None:
    """Send ``app``'s async FCM requests (firebase-admin's httpx client) through
    ``transport`` (``http_transport``: aiohttp, or httpcore pools).

    firebase-admin's ``HttpxAsyncClient`` takes no pool limits: each of its two transports
    (``HttpxRetryTransport``, for http:// and https://) wraps an ``httpx.AsyncHTTPTransport``
    built with httpx's defaults, 100 connections of which 20 are kept alive -- and httpcore
    1.0 closes an idle connection whenever the pool holds more than that in all, so under
    load nearly every request opened a new one. The wrapped transport is what the retry
    transport dispatches to (it reads the attribute on every request): replaced by ours,
    everything above it (auth flow, retry policy, headers, HTTP/2) stays the SDK's.
    """
    from firebase_admin import messaging

    service = messaging._get_messaging_service(app)
    for retry_transport in service._async_client._mounts.values():
        retry_transport._wrapped_transport = transport


HttpTransport = Literal["aiohttp", "httpcore"]


def http_transport(
    kind: HttpTransport, connections: int, pool_size: int
) -> httpx.AsyncBaseTransport:
    """The transport under an httpx client that keeps at most ``connections`` requests in
    flight: ``aiohttp`` (``aiohttp_transport``, HTTP/1.1) or ``httpcore`` (httpx's own, in
    ``PooledTransport`` pools of ``pool_size``, HTTP/2 where an https server offers it)."""
    if kind == "aiohttp":
        return aiohttp_transport(connections)
    return PooledTransport(connections, pool_size, http2=True)


def aiohttp_transport(connections: int, *, keepalive_s: float = 30.0) -> httpx.AsyncBaseTransport:
    """An httpx transport (httpx-aiohttp's) that sends through one aiohttp connector of
    ``connections`` connections, all kept alive ``keepalive_s`` after their last use.

    HTTP/1.1 only; aiohttp parses with llhttp (C) and keeps its pool in dicts, so a send
    costs far less CPU than through httpcore (pure-Python h11 or h2, and a pool scanned on
    every request): the SDK alone reached 0.35-0.38 of the lean client's rate for webhooks
    and 0.28-0.32 for FCM, against 0.21-0.28 and 0.20-0.23 over httpcore
    (benchmarks/RESULTS.md). The session is made on the first
    request, inside the running loop, and closed with the transport.
    """
    import aiohttp

    tls = httpx.create_ssl_context()  # httpx's CA bundle (certifi), as for its own transports

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=connections, limit_per_host=0, ssl=tls, keepalive_timeout=keepalive_s
        )
        return aiohttp.ClientSession(connector=connector)

    transport: httpx.AsyncBaseTransport = _aiohttp_transport_class()(client=session)
    return transport


@functools.cache
def _aiohttp_transport_class() -> type[Any]:
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    class _Transport(AiohttpTransport):  # type: ignore[misc]
        # httpx-aiohttp (0.2) maps every aiohttp.ClientConnectionError, a refused
        # connection included, to httpx.ConnectTimeout; httpx's own transport raises
        # ConnectError for it, and callers tell the two apart (a timeout vs no server).
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            try:
                response: httpx.Response = await super().handle_async_request(request)
            except httpx.ConnectTimeout as exc:
                if isinstance(exc.__cause__, aiohttp.ServerTimeoutError | TimeoutError):
                    raise
                raise httpx.ConnectError(str(exc), request=request) from exc.__cause__
            return response

    return _Transport


class CookielessResponses(httpx.Cookies):
    """A client's cookie jar that skips responses without a ``Set-Cookie`` header.

    httpx hands every response to the jar (``extract_cookies``), which wraps it and its
    request in urllib adapters first: 11 % of the CPU of a webhook send. Providers and
    webhook consumers answer without cookies, and a response without ``Set-Cookie`` has
    nothing to extract, so skipping it changes nothing; one with cookies goes through
    httpx as before."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


def skip_cookieless_responses(client: httpx.AsyncClient) -> None:
    """Give ``client`` a ``CookielessResponses`` jar holding its current cookies. httpx's
    ``cookies`` setter copies into a plain ``Cookies``, so the jar goes in its attribute."""
    jar = CookielessResponses()
    for cookie in client.cookies.jar:
        jar.jar.set_cookie(cookie)
    client._cookies = jar


def split_evenly(total: int, most: int) -> list[int]:
    """``total`` split into as few parts of at most ``most`` as possible, as even as can be:
    ``split_evenly(100, 16)`` is seven parts, two of 15 and five of 14."""
    if total < 1 or most < 1:
        raise ValueError(f"need total >= 1 and most >= 1, got {total}, {most}")
    parts = -(-total // most)
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class PooledTransport(httpx.AsyncBaseTransport):
    """An httpx transport made of several small connection pools: each request goes to the
    pool with the most room, and holds its place there until its response is closed.

    httpcore's pool costs grow with its size: on each request and each response it scans
    every connection (and, for each idle one, every connection again, asking the socket
    whether it is readable). With the sink's hundreds of sends in flight one pool of 100
    connections sent fewer webhooks a second than one of 16, and 25 pools of 4 several
    times more (benchmarks/RESULTS.md). Every connection is kept alive: httpcore 1.0
    closes an idle one whenever the pool holds more than ``max_keepalive_connections``
    *in all*, idle or not.

    Requests in flight must stay within ``connections`` (the sender's ``max_in_flight``), so
    a request always finds room and never queues inside a pool. HTTP/2 (ALPN, https only;
    httpx does not try h2c over plain http) makes each pool one connection per origin
    carrying up to ``pool_size`` streams. The pools share one TLS context.
    """

    def __init__(self, connections: int, pool_size: int, *, http2: bool = True) -> None:
        tls = httpx.create_ssl_context()  # built once: each costs ~0.1 s (the CA bundle)
        sizes = split_evenly(connections, pool_size)
        self._pools = [
            httpx.AsyncHTTPTransport(
                verify=tls,
                http2=http2,
                retries=0,
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            )
            for size in sizes
        ]
        self._room = sizes

    @property
    def pools(self) -> int:
        return len(self._pools)

    def room(self) -> list[int]:
        """Free places per pool (for tests)."""
        return list(self._room)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        room = self._room
        i = max(range(len(room)), key=room.__getitem__)
        room[i] -= 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                room[i] += 1

        try:
            response = await self._pools[i].handle_async_request(request)
        except BaseException:
            release()
            raise
        # The connection stays taken until the body is read and the response closed.
        response.stream = _ReleasingStream(response.stream, release)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()


def _loopback_only_credentials(service_account: dict[str, Any]) -> Any:
    from firebase_admin import credentials
    from google.oauth2 import service_account as google_service_account

    class LoopbackOnlyCredentials(google_service_account.Credentials):  # type: ignore[misc]
        # Says no boundary lookup is needed; the token exchange itself (against the
        # account's token_uri) stays google-auth's own.
        def _is_regional_access_boundary_lookup_required(self) -> bool:
            return False

    return LoopbackOnlyCredentials.from_service_account_info(
        service_account, scopes=credentials._scopes
    )


def apns_ssl_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """System CAs, plus ``ca_file`` when given (the sandbox's throwaway CA)."""
    ctx = ssl.create_default_context()
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    return ctx


def apns_client(
    *,
    key: str,
    key_id: str,
    team_id: str,
    topic: str,
    use_sandbox: bool = False,
    apns_url: str | None = None,
    ca_file: str | Path | None = None,
    max_connections: int = 4,
    max_connection_attempts: int = 3,
) -> APNs:
    """An aioapns client (token auth), optionally sending to ``apns_url`` instead of Apple,
    that spreads its requests over up to ``max_connections`` HTTP/2 connections.

    Must be called with a running loop (aioapns grabs it in its constructor).
    """
    from aioapns import APNs
    from aioapns.connection import APNsKeyConnectionPool

    options: dict[str, Any] = {
        "key": key,
        "key_id": key_id,
        "team_id": team_id,
        "topic": topic,
        "use_sandbox": use_sandbox,
        "ssl_context": apns_ssl_context(ca_file),
        "max_connections": max_connections,
        "max_connection_attempts": max_connection_attempts,
    }
    client = APNs(**options)
    # `pool` is the client's public attribute, and all it sends through: replaced by one
    # built with the same arguments that spreads the load (see _spreading_pool).
    pool = _spreading_pool(APNsKeyConnectionPool)(**options)
    # The pool reads protocol_class (an instance attribute) for every new connection.
    pool.protocol_class = _apns_protocol(pool.protocol_class, apns_url)
    client.pool = pool
    return client


def _streams_in_use(connection: Any) -> int:
    channels = connection.free_channels  # aioapns' bounded semaphore of the stream ids
    return int(channels.bound - channels._value)


def _spreading_pool(base: type[Any]) -> type[Any]:
    """aioapns' pool, but spreading requests over its connections.

    aioapns hands every request to its first connection with a free stream, opening the next
    one only when all are full: at the sink's concurrency one connection carried nearly all
    the traffic, and when every stream was taken each waiting request polled every 10 ms.
    Apple asks for several connections for volume. Here a request takes the connection with
    the fewest streams in use, and while that one is not idle and fewer than
    ``max_connections`` are open (and nobody is opening one already) a new connection is
    opened for it; if that fails, an open connection with room serves it. The sender keeps
    the requests in flight within connections x streams, so the polling stays a fallback
    for a server that allows fewer streams than configured.
    """
    from aioapns.exceptions import ConnectionError as APNsConnectionError

    class SpreadingPool(base):  # type: ignore[misc,valid-type]
        async def acquire(self) -> Any:
            while True:
                least = min(
                    (c for c in self.connections if not c.is_busy),
                    key=_streams_in_use,
                    default=None,
                )
                can_open = len(self.connections) < self.max_connections
                if least is not None and (
                    _streams_in_use(least) == 0 or not can_open or self._lock.locked()
                ):
                    return least
                if not can_open:
                    # Every stream of every connection is in use: wait as aioapns does.
                    await asyncio.sleep(0.01)
                    continue
                async with self._lock:
                    if len(self.connections) >= self.max_connections:
                        continue  # opened by others meanwhile: choose again
                    try:
                        connection = await self.create_connection()
                    except Exception as exc:
                        if least is not None and not least.is_busy:
                            return least
                        # What aioapns raises here: its pool retries after a second.
                        raise APNsConnectionError() from exc
                    self.connections.append(connection)
                    return connection

    return SpreadingPool


@functools.cache
def _literal_encoder_class() -> type[Any]:
    """An HPACK encoder that sends literal header values as they are, not Huffman-coded.

    Every APNs request carries headers seen once (the device token in ``:path``, the
    ``apns-id``), so h2 encodes them afresh each time, and hpack Huffman-codes them byte by
    byte in Python: 23 % of a worker's CPU delivering APNs pushes (benchmarks/RESULTS.md).
    Huffman coding is optional in HPACK (RFC 7541, 5.2); without it a request's headers
    are some 60 bytes longer. Indexing is unchanged: repeated headers (the authorization
    token, the topic) are still sent as table references."""
    from hpack import Encoder

    class LiteralEncoder(Encoder):  # type: ignore[misc]
        def encode(self, headers: Any, huffman: bool = False) -> bytes:
            encoded: bytes = super().encode(headers, huffman=False)
            return encoded

    return LiteralEncoder


def _literal_encoder() -> Any:
    """A new encoder (one per HTTP/2 connection: its header table is the connection's)."""
    return _literal_encoder_class()()


def _apns_protocol(base: type[Any], apns_url: str | None) -> type[Any]:
    host: str = base.APNS_SERVER
    port: int = base.APNS_PORT
    if apns_url is not None:
        url = urlsplit(apns_url)
        if url.scheme != "https" or url.hostname is None:
            raise ValueError(f"need https://host[:port], got {apns_url!r}")
        host, port = url.hostname, url.port or 443

    class APNsProtocol(base):  # type: ignore[misc,valid-type]
        # Where to connect (the same as aioapns' unless overridden) ...
        APNS_SERVER = host
        APNS_PORT = port

        # ... header blocks without Huffman coding (see _literal_encoder_class) ...
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.conn.encoder = _literal_encoder()

        # ... and tolerance of requests their caller stopped waiting for. aioapns resolves
        # a request's future when its answer arrives; if the caller timed out, that future
        # is cancelled and set_result raises InvalidStateError inside data_received, which
        # kills the connection and every stream on it (aioapns then resends those). So a
        # cancelled request is forgotten before its late answer is matched.
        def _forget_if_cancelled(self, notification_id: str | None) -> None:
            future = self.requests.get(notification_id)
            if future is not None and future.done():
                del self.requests[notification_id]

        def on_response_received(self, headers: dict[bytes, bytes]) -> None:
            self._forget_if_cancelled(headers.get(b"apns-id", b"").decode("utf8"))
            super().on_response_received(headers)

        def on_data_received(self, data: bytes, stream_id: int) -> None:
            self._forget_if_cancelled(self.request_streams.get(stream_id))
            super().on_data_received(data, stream_id)

        def connection_lost(self, exc: Exception | None) -> None:
            for notification_id in list(self.requests):
                self._forget_if_cancelled(notification_id)
            super().connection_lost(exc)

    return APNsProtocol
