"""APNs over HTTP/2 + TLS, for the real aioapns client.

aioapns has no host argument: the host is the ``APNS_SERVER``/``APNS_PORT``
class attributes of its protocol class, picked from ``use_sandbox``
(``api.development.push.apple.com`` or ``api.push.apple.com``, port 443). Its
``proxy_host``/``proxy_port`` (HTTP CONNECT) option would have been pure
configuration, but in aioapns 4.0 it fails on Python 3.11 (it hands asyncio's
``TransportSocket`` wrapper to ``create_connection(sock=...)``). So clients use
a subclass overriding only those two attributes (see ``clients.apns_client``);
TLS is trusted through aioapns' own ``ssl_context`` argument, using the
throwaway ``trustme`` CA that signs this server's certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import time
import uuid

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded
from h2.exceptions import ProtocolError

from devenv.sandbox.faults import FaultRule
from devenv.sandbox.state import SandboxState

PROVIDER = "apns"
APPLE_HOSTS = ("api.push.apple.com", "api.development.push.apple.com")
MAX_PAYLOAD_BYTES = 4096
DEVICE_TOKEN = re.compile(r"^[0-9a-fA-F]{64,200}$")
PUSH_TYPES = {"alert", "background", "voip", "complication", "fileprovider", "mdm",
              "liveactivity", "location", "pushtotalk", "controls", "widgets"}  # fmt: skip

# APNs reason -> HTTP status.
STATUS_FOR_REASON = {
    "BadDeviceToken": 400,
    "DeviceTokenNotForTopic": 400,
    "MissingTopic": 400,
    "InvalidPushType": 400,
    "BadExpirationDate": 400,
    "BadPriority": 400,
    "MissingProviderToken": 403,
    "InvalidProviderToken": 403,
    "ExpiredProviderToken": 403,
    "Unregistered": 410,
    "PayloadTooLarge": 413,
    "TooManyRequests": 429,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
}
REASON_FOR_STATUS = {
    400: "BadDeviceToken",
    403: "InvalidProviderToken",
    410: "Unregistered",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}

Reply = tuple[int, dict[str, str], bytes]


def error_reply(status: int, reason: str, retry_after_s: float | None = None) -> Reply:
    body: dict[str, object] = {"reason": reason}
    if status == 410:
        # APNs says since when the token has been invalid (ms since epoch).
        body["timestamp"] = int(time.time() * 1000)
    headers = {"retry-after": str(int(retry_after_s))} if retry_after_s else {}
    return status, headers, json.dumps(body).encode()


def render_error(rule: FaultRule) -> Reply:
    if rule.error:
        status = rule.status or STATUS_FOR_REASON.get(rule.error, 400)
        return error_reply(status, rule.error, rule.retry_after_s)
    status = rule.status or 500
    return error_reply(
        status, REASON_FOR_STATUS.get(status, "InternalServerError"), rule.retry_after_s
    )


class CertificateAuthority:
    """A fresh CA and a server certificate for Apple's APNs host names."""

    def __init__(self) -> None:
        import trustme  # only needed when APNs is served

        self._ca = trustme.CA()
        self._leaf = self._ca.issue_cert(*APPLE_HOSTS, "localhost", "127.0.0.1")
        self.ca_pem = self._ca.cert_pem.bytes()

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(ctx)
        ctx.set_alpn_protocols(["h2"])
        return ctx


def _validate(headers: dict[str, str], token: str, body: bytes) -> Reply | None:
    """The checks APNs itself makes, before any injected fault."""
    if not headers.get("authorization", "").startswith("bearer "):
        # Certificate auth is not served: the sandbox does not do client-cert TLS.
        return error_reply(403, "MissingProviderToken")
    if not headers.get("apns-topic"):
        return error_reply(400, "MissingTopic")
    push_type = headers.get("apns-push-type")
    if push_type is not None and push_type not in PUSH_TYPES:
        return error_reply(400, "InvalidPushType")
    if headers.get("apns-priority") not in (None, "1", "5", "10"):
        return error_reply(400, "BadPriority")
    if not DEVICE_TOKEN.match(token):
        return error_reply(400, "BadDeviceToken")
    if len(body) > MAX_PAYLOAD_BYTES:
        return error_reply(413, "PayloadTooLarge")
    try:
        json.loads(body)
    except ValueError:
        return error_reply(400, "PayloadEmpty" if not body else "BadPayload")
    return None


class APNsServer:
    """TLS + HTTP/2 APNs endpoint on its own port."""

    def __init__(self, state: SandboxState, ca: CertificateAuthority) -> None:
        self.state = state
        self._tls = ca.server_context()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._handle, host, port, ssl=self._tls)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            await _H2Session(self.state, reader, writer).run()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, ProtocolError):
            pass  # client went away or spoke nonsense: just drop the connection
        finally:
            self._connections.discard(writer)
            writer.close()


class _H2Session:
    """One HTTP/2 connection; each request is answered from its own task."""

    def __init__(
        self, state: SandboxState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.state = state
        self.reader = reader
        self.writer = writer
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.headers: dict[int, dict[str, str]] = {}
        self.bodies: dict[int, bytearray] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    async def run(self) -> None:
        self.conn.initiate_connection()
        self.flush()
        try:
            while data := await self.reader.read(65536):
                for event in self.conn.receive_data(data):
                    if isinstance(event, RequestReceived):
                        assert event.stream_id is not None and event.headers is not None
                        self.headers[event.stream_id] = {str(k): str(v) for k, v in event.headers}
                        self.bodies[event.stream_id] = bytearray()
                    elif isinstance(event, DataReceived):
                        assert event.stream_id is not None and event.data is not None
                        self.bodies[event.stream_id] += event.data
                        # Give the window back at once: bodies are tiny.
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length or 0, event.stream_id
                        )
                    elif isinstance(event, StreamEnded):
                        assert event.stream_id is not None
                        task = asyncio.create_task(self._answer(event.stream_id))
                        self.tasks.add(task)
                        task.add_done_callback(self.tasks.discard)
                    elif isinstance(event, ConnectionTerminated):
                        return
                self.flush()
                await self.writer.drain()
        finally:
            for task in self.tasks:
                task.cancel()

    async def _answer(self, stream_id: int) -> None:
        headers = self.headers.pop(stream_id)
        body = bytes(self.bodies.pop(stream_id))
        apns_id = headers.get("apns-id") or str(uuid.uuid4()).upper()
        # This session is one client connection: the load meter tells them apart by it.
        self.state.load.enter(PROVIDER, self)
        try:
            status, extra, reply_body = await self._process(headers, body)
        finally:
            self.state.load.exit(PROVIDER)
        response = [(":status", str(status)), ("apns-id", apns_id), *extra.items()]
        with contextlib.suppress(ProtocolError):  # stream reset meanwhile
            self.conn.send_headers(stream_id, response, end_stream=not reply_body)
            if reply_body:
                self.conn.send_data(stream_id, reply_body, end_stream=True)
            self.flush()

    async def _process(self, headers: dict[str, str], body: bytes) -> Reply:
        path = headers.get(":path", "")
        if headers.get(":method") != "POST" or not path.startswith("/3/device/"):
            return error_reply(404 if headers.get(":method") == "POST" else 405, "BadPath")
        token = path.removeprefix("/3/device/")
        invalid = _validate(headers, token, body)
        if invalid is not None:
            return invalid
        rule = await self.state.delay_for_fault(PROVIDER, [token])
        if rule is not None and rule.timeout:
            return error_reply(503, "ServiceUnavailable")
        if rule is not None and rule.fails:
            return render_error(rule)
        plain = {k: v for k, v in headers.items() if not k.startswith(":")}
        self.state.accept(PROVIDER, token, json.loads(body), plain)
        return 200, {}, b""
