"""The sandbox server, run on its own thread and event loop.

Its own loop is deliberate: the real SDKs are mostly synchronous (sendgrid,
twilio, firebase-admin's ``send``), and calling them from the loop that serves
them would deadlock. A dedicated thread makes one ``Sandbox`` usable from sync
code (``with``) and async code (``async with``) alike.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from aiohttp.typedefs import Handler

from devenv.sandbox import control, fcm, sendgrid, twilio, webhook
from devenv.sandbox.apns import APNsServer, CertificateAuthority
from devenv.sandbox.faults import FaultRule
from devenv.sandbox.record import SendRecord
from devenv.sandbox.state import SandboxState

PROVIDERS = (sendgrid, twilio, fcm, webhook)
# Above SendGrid's 30 MB limit, so the sandbox can answer that limit as SendGrid does.
MAX_REQUEST_BYTES = sendgrid.MAX_REQUEST_BYTES + 2 * 1024 * 1024


def _metered(state: SandboxState, sends: dict[str, str]) -> Any:
    """Counts each provider send in ``state.load`` while it is answered (``sends``: route
    -> provider; other routes, the control API and the token endpoint, are not counted)."""

    @web.middleware
    async def metered(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        provider = sends.get(route.canonical) if route is not None else None
        if provider is None:
            return await handler(request)
        # One transport per client connection: what tells connections apart.
        state.load.enter(provider, request.transport)
        try:
            return await handler(request)
        finally:
            state.load.exit(provider)

    return metered


class Sandbox:
    """Local stand-in for the providers' HTTP APIs, on ``127.0.0.1``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self.state = SandboxState()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._apns: APNsServer | None = None
        self._ca: CertificateAuthority | None = None
        self._ca_dir: tempfile.TemporaryDirectory[str] | None = None
        self.apns_port = 0

    # -- URLs the SDKs are configured with ------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def sendgrid_url(self) -> str:
        return self.base_url

    @property
    def twilio_url(self) -> str:
        return self.base_url

    @property
    def fcm_url(self) -> str:
        return self.base_url

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}{fcm.TOKEN_PATH}"

    @property
    def apns_url(self) -> str:
        """TLS + HTTP/2 endpoint; see ``devenv.sandbox.apns`` for pointing aioapns at it."""
        return f"https://{self.host}:{self.apns_port}"

    @property
    def apns_ca_file(self) -> Path:
        """PEM of the CA that signed the APNs certificate (for other processes)."""
        assert self._ca_dir is not None, "sandbox not started"
        return Path(self._ca_dir.name) / "apns-ca.pem"

    def apns_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the sandbox's APNs certificate."""
        return ssl.create_default_context(cafile=str(self.apns_ca_file))

    def webhook_url(self, name: str) -> str:
        """A webhook endpoint; its sends are recorded with target ``name``."""
        return f"{self.base_url}/webhooks/{name}"

    @property
    def webhook_secret(self) -> str | None:
        """Secret the webhook receiver verifies Clarion-Signature with (None = no check)."""
        return self.state.webhook_secret

    @webhook_secret.setter
    def webhook_secret(self, value: str | None) -> None:
        self.state.webhook_secret = value

    @property
    def sendgrid_event_webhook_url(self) -> str | None:
        """Where bounce events (``error="bounce"`` faults) are POSTed; None = dropped."""
        return self.state.sendgrid_event_webhook_url

    @sendgrid_event_webhook_url.setter
    def sendgrid_event_webhook_url(self, value: str | None) -> None:
        self.state.sendgrid_event_webhook_url = value

    @property
    def sendgrid_webhook_public_key(self) -> str:
        """Event Webhook verification key, base64 DER as SendGrid shows it."""
        return sendgrid.public_key_b64(self.state.sendgrid_events_key)

    def urls(self) -> dict[str, str]:
        return {
            "sendgrid": self.sendgrid_url,
            "sendgrid_webhook_public_key": self.sendgrid_webhook_public_key,
            "twilio": self.twilio_url,
            "fcm": self.fcm_url,
            "fcm_token_uri": self.token_uri,
            "apns": self.apns_url,
            "apns_ca_file": str(self.apns_ca_file),
            "webhook": f"{self.base_url}/webhooks",
            "webhook_secret": self.webhook_secret or "",
            "control": f"{self.base_url}/_sandbox",
        }

    # -- in-process control --------------------------------------------------------
    def sends(self, provider: str | None = None, target: str | None = None) -> list[SendRecord]:
        return self.state.log.sends(provider, target)

    def sends_per_second(self, provider: str | None = None) -> dict[int, int]:
        return self.state.log.per_second(provider)

    def requests(self, provider: str | None = None) -> int:
        """Requests received, accepted or not, by providers that batch (SendGrid: one per
        mail/send request, whatever its personalizations); cleared with the sends."""
        return self.state.log.requests(provider)

    def inject(self, provider: str, **kwargs: object) -> FaultRule:
        rule = FaultRule.from_json({"provider": provider, **kwargs})
        self.state.faults.add(rule)
        return rule

    def clear_faults(self, provider: str | None = None) -> None:
        self.state.faults.clear(provider)

    def clear_sends(self) -> None:
        self.state.log.clear()

    def load(self) -> dict[str, dict[str, int]]:
        """Per provider: requests in flight, the most at once, requests and client
        connections since the last ``reset_load`` (see ``devenv.sandbox.load``)."""
        return self.state.load.snapshot()

    def reset_load(self) -> None:
        self.state.load.reset()

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        ready = threading.Event()
        errors: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start()'s caller below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="provider-sandbox", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]

    async def _serve(self) -> None:
        self.state.stopping = asyncio.Event()
        # Each provider's send routes, for the load meter (see `_metered`).
        sends: dict[str, str] = {}
        app = web.Application(
            client_max_size=MAX_REQUEST_BYTES, middlewares=[_metered(self.state, sends)]
        )
        for provider in (*PROVIDERS, control):
            before = set(app.router.routes())
            provider.setup(app, self.state)
            if provider is not control:
                for route in set(app.router.routes()) - before:
                    if route.resource is not None and route.resource.canonical != fcm.TOKEN_PATH:
                        sends[route.resource.canonical] = provider.PROVIDER
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        # Port 0 asks the OS for a free port; read back which one it chose.
        self.port = int(self._runner.addresses[0][1])
        # APNs needs its own port: it speaks TLS + HTTP/2, not aiohttp's HTTP/1.1.
        self._ca = CertificateAuthority()
        self._ca_dir = tempfile.TemporaryDirectory(prefix="clarion-sandbox-")
        self.apns_ca_file.write_bytes(self._ca.ca_pem)
        self._apns = APNsServer(self.state, self._ca)
        self.apns_port = await self._apns.start(self.host)

    async def _shutdown(self) -> None:
        assert self.state.stopping is not None
        self.state.stopping.set()
        for task in list(self.state.background):
            task.cancel()
        if self._apns is not None:
            await self._apns.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        # A handler may still be draining a refused body (aiohttp's lingering read, e.g.
        # after a 413); cancel what is left so no task is destroyed pending at loop close.
        current = asyncio.current_task()
        rest = [task for task in asyncio.all_tasks() if task is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        if self._ca_dir is not None:
            self._ca_dir.cleanup()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._thread = None
        self._loop = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # start/stop block briefly on the server thread; keep the caller's loop free.
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
