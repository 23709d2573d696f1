"""Shared state the provider handlers use: the send log, the faults, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from devenv.sandbox.faults import FaultRule, FaultTable
from devenv.sandbox.record import SendLog, SendRecord

# Renders a provider-specific error answer for a failing rule.
ErrorRenderer = Callable[[FaultRule], web.Response]


@dataclass
class SandboxState:
    log: SendLog = field(default_factory=SendLog)
    faults: FaultTable = field(default_factory=FaultTable)
    # Created on the server's loop; set at shutdown so hanging requests end promptly.
    stopping: asyncio.Event | None = None

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
        self, provider: str, target: str, payload: object, headers: dict[str, str]
    ) -> SendRecord:
        record = SendRecord(
            provider=provider,
            target=target,
            payload=payload,
            headers=headers,
            message_id=uuid.uuid4().hex,
        )
        self.log.add(record)
        return record
