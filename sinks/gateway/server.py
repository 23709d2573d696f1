"""The gateway's HTTP side: GET /inapp/stream (SSE, the worker's token auth and resume
semantics) and GET /health; `run_gateway` wires it to Kafka and runs until cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import time
import uuid
from typing import Any

from aiohttp import web

from schemas.presence import GatewayPush
from sinks import sse
from sinks.client_auth import json_error as _error
from sinks.client_auth import user_from
from sinks.gateway.connections import Connection, Registry, Signal
from sinks.gateway.kafka import DeliveryReader, PresencePublisher
from streams.settings import Settings

log = logging.getLogger("clarion.gateway")
# The gateway's own comment: the replay is done, items come live from here.
_SYNCED = sse.comment("synced")


def _rss_bytes() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class Gateway:
    def __init__(self, settings: Settings, gateway_id: str) -> None:
        self.settings = settings
        self.gateway_id = gateway_id
        self.epoch = uuid.uuid4().hex[:12]
        self.presence = PresencePublisher(settings, gateway_id, self.epoch)
        self.registry = Registry(self.presence.online, self.presence.offline)
        self.reader = DeliveryReader(settings, gateway_id, self._dispatch)
        self.ready = False
        self.stopping = False

    def _dispatch(self, push: GatewayPush) -> None:
        self.registry.dispatch(push)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/inapp/stream", self.stream)
        app.router.add_get("/health", self.health)
        return app

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /inapp/stream — as the worker's: `Authorization: Bearer` or `?token=`, resume
        after `Last-Event-ID` (header or `last_event_id` query). `: synced` follows the
        replay, once the worker knows the connection (from then on items come live)."""
        if not self.ready or self.stopping:
            return _error(503, "gateway is not ready; retry")
        user_id = user_from(request, self.settings.inapp_token_secret.get_secret_value())
        if isinstance(user_id, web.Response):
            return user_id
        last_id = sse.last_event_id(request)
        response = await sse.open_stream(request)
        # Registered (and announced) before anything is written: nothing sent to this user
        # from now on can pass by the connection.
        conn = self.registry.open(user_id, last_id)
        try:
            await response.write(sse.CONNECTED)
            await self._serve(conn, response)
        except ConnectionResetError:
            pass  # the client went away mid-write (else aiohttp cancels the handler)
        finally:
            self.registry.close(conn)
        return response

    async def _serve(self, conn: Connection, response: web.StreamResponse) -> None:
        sync_timeout = self.settings.gateway_sync_timeout_s
        while True:
            message = await conn.queue.get()
            if message is Signal.CLOSE:
                return
            frames = b""
            if message is Signal.TICK:
                frames = sse.KEEPALIVE
                if not conn.cursor.synced and time.monotonic() - conn.opened_at > sync_timeout:
                    frames += sse.frames(conn.cursor.give_up_waiting()) + _SYNCED
            elif isinstance(message, GatewayPush):
                if message.sync:
                    first = not conn.cursor.synced
                    frames = sse.frames(conn.cursor.on_sync(message.items))
                    if first:
                        frames += _SYNCED
                else:
                    frames = sse.frames(conn.cursor.on_live(message.items))
            if frames:
                await response.write(frames)

    async def health(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {
            "ready": self.ready and not self.stopping,
            "gateway_id": self.gateway_id,
            "epoch": self.epoch,
            "deliveries_partition": self.reader.partition,
            "connections": self.registry.connections(),
            "users": self.registry.users(),
            "received": self.reader.received,
            "rss_bytes": _rss_bytes(),
        }
        return web.Response(
            text=json.dumps(body),
            status=200 if body["ready"] else 503,
            content_type="application/json",
        )

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(sse.KEEPALIVE_S)
            self.registry.broadcast(Signal.TICK)


def raise_fd_limit() -> int:
    """Connections are file descriptors: take the soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def run_gateway(settings: Settings, host: str, port: int, gateway_id: str) -> None:
    """Serve until cancelled (Ctrl-C / SIGTERM), then close every stream, revoke the lease
    (the workers see this gateway's users offline at once) and stop."""
    fds = raise_fd_limit()
    gateway = Gateway(settings, gateway_id)
    await gateway.reader.start()
    await gateway.presence.start()
    # handler_cancellation: a client that disconnects cancels its handler at once, so its
    # OFFLINE goes out now rather than at the next failed keepalive write.
    runner = web.AppRunner(gateway.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, shutdown_timeout=5.0)
    await site.start()
    ticker = asyncio.create_task(gateway._ticker(), name="gateway-keepalive")
    gateway.ready = True
    log.info(
        "gateway %s (epoch %s) on http://%s:%d, reading gateway.deliveries partition %d, "
        "file descriptors %d",
        gateway_id,
        gateway.epoch,
        host,
        port,
        gateway.reader.partition,
        fds,
    )
    try:
        await asyncio.Event().wait()
    finally:
        gateway.stopping = True
        ticker.cancel()
        gateway.registry.broadcast(Signal.CLOSE)
        await asyncio.shield(_stop(gateway, runner))


async def _stop(gateway: Gateway, runner: web.AppRunner) -> None:
    await runner.cleanup()
    await gateway.reader.stop()
    await gateway.presence.stop()
    log.info("gateway %s stopped", gateway.gateway_id)


def main() -> None:
    """`python -m sinks.gateway` (what `clarion gateway` runs, without the Faust CLI)."""
    import argparse

    from streams.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m sinks.gateway")
    parser.add_argument("--host", default=settings.gateway_host)
    parser.add_argument("--port", type=int, default=settings.gateway_port)
    parser.add_argument("--id", dest="gateway_id", default=settings.gateway_id)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, args.host, args.port, args.gateway_id))


async def serve(settings: Settings, host: str, port: int, gateway_id: str) -> None:
    """`run_gateway` until SIGTERM or SIGINT, then its clean stop. These handlers replace
    the Faust CLI's (`clarion gateway`), which would stop the loop before the lease is
    revoked and the producer closed."""
    # Start, stop and failures on stderr, whatever the Faust CLI did to logging.
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.INFO)
    task = asyncio.create_task(run_gateway(settings, host, port, gateway_id))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
