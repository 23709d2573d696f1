"""Fixtures of the stage tests: an app built by `build_app` for in-process use (memory
tables, no broker contact), its harness, and the provider sandbox for the sinks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.sandbox import Sandbox
from devenv.sandbox.env import provider_env
from sinks.providers import ProviderSettings
from sinks.providers.registry import load_specs
from streams.app import build_app
from streams.settings import Settings
from tests.stages.harness import StageHarness

PARTITIONS = 8
# Retries fast and provider pacing out of the way, as tests/integration/delivery_env.py does.
FAST_DELIVERY: dict[str, Any] = {
    "retry_base_s": 0.05,
    "retry_cap_s": 0.2,
    "retry_max_attempts": 3,
}
# Pacing is each provider's own setting (ProviderSettings), not the app's.
NO_PACING: dict[str, Any] = {f"pace_{s.name}_per_s": 100_000.0 for s in load_specs()}


def stage_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Explicit settings (the environment's CLARION_* cannot change which agents exist)."""
    fields: dict[str, Any] = {
        "app_id": "stage-test",
        "lanes": "all",
        "topic_prefix": "",
        "partitions": PARTITIONS,
        "data_dir": tmp_path / "data",  # unused by memory:// tables; no file is written
        "rules_path": None,
        "fault_injection": "",
        "outbox_path": tmp_path / "outbox.jsonl",
        "outbox_console": False,
        **FAST_DELIVERY,
    }
    return Settings(**(fields | overrides))


def no_providers() -> ProviderSettings:
    """No provider configured, whatever the environment says: defaults only."""
    return ProviderSettings.model_construct(**NO_PACING)


class Clock:
    """Moves the wall clock (`time.time`, which the stages read for "now") forward."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._real = time.time
        self.shift = 0.0

    def advance(self, seconds: float) -> None:
        self.shift += seconds
        shift, real = self.shift, self._real
        self._monkeypatch.setattr(time, "time", lambda: real() + shift)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def harness(tmp_path: Path, **settings: Any) -> StageHarness:
    """The harness of a fresh app with memory tables and no provider configured."""
    app = build_app(
        stage_settings(tmp_path, **settings), store="memory://", providers=no_providers()
    )
    return StageHarness(app)


@pytest.fixture
async def stage(tmp_path: Path) -> AsyncIterator[StageHarness]:
    """The harness of a fresh app with no provider configured (route, digest, emit)."""
    yield harness(tmp_path)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """The local provider sandbox (FCM, APNs, SendGrid, Twilio, webhooks), in this process on
    its own thread, shared by a module; `sb` resets it for each test."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def sb(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.clear_faults()
    sandbox.clear_sends()
    sandbox.sendgrid_event_webhook_url = None
    yield sandbox
    sandbox.clear_faults()


@pytest.fixture(scope="module")
def sandbox_providers(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> ProviderSettings:
    """Every provider configured and pointed at the sandbox (the real SDKs send to it)."""
    env = provider_env(sandbox, tmp_path_factory.mktemp("providers"))
    fields: dict[str, Any] = {k.removeprefix("CLARION_").lower(): v for k, v in env.items()}
    return ProviderSettings(**(fields | {"send_timeout_s": 3.0} | NO_PACING))


@pytest.fixture
async def delivering(
    tmp_path: Path, sb: Sandbox, sandbox_providers: ProviderSettings
) -> AsyncIterator[StageHarness]:
    """The harness of a fresh app whose sinks deliver through the SDKs to the sandbox."""
    app = build_app(stage_settings(tmp_path), store="memory://", providers=sandbox_providers)
    try:
        yield StageHarness(app)
    finally:
        for sender in app.ctx.senders.values():
            await sender.aclose()
