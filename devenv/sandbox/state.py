"""Shared state the provider handlers use: the send log, the faults, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from devenv.sandbox.faults import FaultRule, FaultTable
from devenv.sandbox.load import LoadMeter
from devenv.sandbox.record import SendLog, SendRecord

# Renders a provider-specific error answer for a failing rule.
ErrorRenderer = Callable[[FaultRule], web.Response]


@dataclass
class SandboxState:
    log: SendLog = field(default_factory=SendLog)
    faults: FaultTable = field(default_factory=FaultTable)
    load: LoadMeter = field(default_factory=LoadMeter)
    # Created on the server's loop; set at shutdown so hanging requests end promptly.
    stopping: asyncio.Event | None = None
    # Where SendGrid Event Webhook batches go (None = nowhere), and the key that signs them.
    sendgrid_event_webhook_url: str | None = None
    sendgrid_events_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    # Webhook requests must be signed with this (None = accept unsigned ones).
    webhook_secret: str | None = field(default_factory=lambda: "sandbox-" + secrets.token_hex(24))
    # Work started after an answer (event webhook posts); cancelled at shutdown.
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def apply_fault(
        self, provider: str, targets: list[str], render: ErrorRenderer
    ) -> web.Response | None:
        """Apply the matching fault, if any; a returned response replaces success."""
        rule = await self.delay_for_fault(provider, targets)
        if rule is None:
            return None
        if rule.timeout:
            return web.Response(status=504, text="sandbox: hung request released")
        return render(rule) if rule.fails else None

    async def delay_for_fault(self, provider: str, targets: list[str]) -> FaultRule | None:
        """Take the matching rule and serve its latency/hang; the caller renders errors."""
        rule = self.faults.take(provider, targets)
        if rule is None:
            return None
        if rule.latency_ms:
            await asyncio.sleep(rule.latency_ms / 1000)
        if rule.timeout:
            assert self.stopping is not None
            # Waiting on the shutdown event, not a bare sleep, keeps stop() fast.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=rule.hang_s)
        return rule

    def accept(
        self,
        provider: str,
        target: str,
        payload: object,
        headers: dict[str, str],
        message_id: str | None = None,
    ) -> SendRecord:
        record = SendRecord(
            provider=provider,
            target=target,
            payload=payload,
            headers=headers,
            message_id=message_id or uuid.uuid4().hex,
        )
        self.log.add(record)
        return record
