"""A provider added as one module plus one registry line (tests/fake_provider.py) is
delivered through by the provider sink (sinks/deliver.py): its sender, pacer and label come
from the registry, with no other edit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sinks.providers import registry
from streams import metrics
from streams.app import build_app
from tests import fake_provider
from tests.factories import delivery_bytes
from tests.stages.conftest import stage_settings
from tests.stages.harness import StageHarness


async def test_a_registered_provider_is_delivered_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        registry, "PROVIDER_MODULES", (*registry.PROVIDER_MODULES, fake_provider.MODULE)
    )
    fake_provider.SENT.clear()
    # Only the fake is configured (through its environment variable): SMS is its channel,
    # shared with Twilio.
    for name in [n for n in os.environ if n.startswith("CLARION_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CLARION_FAKE_API_KEY", "k")
    providers = registry.settings_class()(pace_fake_per_s=1_000.0)
    app = build_app(stage_settings(tmp_path), store="memory://", providers=providers)
    stage = StageHarness(app)
    raw = delivery_bytes("sms", "alice", "fake:+15550001")
    before = metrics.registry.get_sample_value(
        "clarion_provider_sends_total",
        {"provider": "fake", "channel": "sms", "lane": "high", "outcome": "sent"},
    )
    async with stage.run("sink.sms.high") as sink:
        await sink.put(raw, key="alice")

    assert [d.delivery_id for d in fake_provider.SENT] == [json.loads(raw)["delivery_id"]]
    [receipt] = [r.json() for r in stage.sent(stage.ctx.topics.receipts, key="alice")]
    assert receipt["status"] == "sent"
    after = metrics.registry.get_sample_value(
        "clarion_provider_sends_total",
        {"provider": "fake", "channel": "sms", "lane": "high", "outcome": "sent"},
    )
    assert (after or 0.0) - (before or 0.0) == 1.0
    fake_provider.SENT.clear()
