"""The provider sinks' pacers follow the partition assignment (sinks/pacers.py): after every
rebalance a worker paces its share of each provider's global rate, by the provider's
delivery partitions it owns; during one (and while it owns none) it sends nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from devenv.sandbox import Sandbox
from logic.partitioning import partition_of
from sinks.providers import ProviderSettings
from streams import metrics
from streams.app import build_app
from tests.factories import delivery_bytes
from tests.stages.conftest import NO_PACING, stage_settings
from tests.stages.harness import StageHarness

PARTITIONS = 6
FCM_PER_S = 600.0
TWILIO_PER_S = 90.0


def paced(tmp_path: Path, **settings: Any) -> StageHarness:
    """A fresh app with 6 partitions and FCM at 600/s, Twilio at 90/s for the deployment."""
    providers = ProviderSettings.model_construct(
        **(NO_PACING | {"pace_fcm_per_s": FCM_PER_S, "pace_twilio_per_s": TWILIO_PER_S})
    )
    app = build_app(
        stage_settings(tmp_path, partitions=PARTITIONS, **settings),
        store="memory://",
        providers=providers,
    )
    return StageHarness(app)


def rates(stage: StageHarness) -> dict[str, float]:
    return {name: pacer.rate for name, pacer in stage.ctx.pacers.pacers.items()}


def gauge(provider: str) -> float | None:
    return metrics.registry.get_sample_value("clarion_provider_pace_per_s", {"provider": provider})


async def test_the_pacers_follow_every_rebalance(tmp_path: Path) -> None:
    stage = paced(tmp_path)
    # Before any assignment: the group's whole budget (no partition, so nothing to send).
    assert rates(stage)["fcm"] == FCM_PER_S
    await stage.rebalance([0, 1])  # a third of every delivery topic
    assert rates(stage)["fcm"] == pytest.approx(FCM_PER_S / 3)
    assert rates(stage)["twilio"] == pytest.approx(TWILIO_PER_S / 3)
    assert gauge("fcm") == pytest.approx(FCM_PER_S / 3)
    await stage.rebalance([3])
    assert rates(stage)["fcm"] == pytest.approx(FCM_PER_S / 6)
    await stage.rebalance(range(PARTITIONS))  # the group's only worker again
    assert rates(stage)["fcm"] == pytest.approx(FCM_PER_S)
    await stage.rebalance([])  # a worker the group has no partition for: no sends
    assert set(rates(stage).values()) == {0.0}
    assert gauge("fcm") == 0.0


async def test_during_a_rebalance_every_pacer_is_paused(tmp_path: Path) -> None:
    stage = paced(tmp_path)
    await stage.rebalance([0, 1, 2])
    await stage.app.on_partitions_revoked.send(stage.assigned)
    assert all(pacer.paused for pacer in stage.ctx.pacers.pacers.values())


async def test_a_group_of_split_lanes_paces_its_lanes_part(tmp_path: Path) -> None:
    """CLARION_LANES=critical under its own app id: a quarter of the budget by default (the
    other group, three lanes, three quarters), or what CLARION_PACE_GROUP_SHARE says."""
    critical = paced(tmp_path / "a", lanes="critical")
    await critical.rebalance([0, 1, 2])  # half of the group's partitions
    assert rates(critical)["fcm"] == pytest.approx(FCM_PER_S / 4 / 2)
    rest = paced(tmp_path / "b", lanes="high,social,bulk")
    await rest.rebalance([0, 1, 2])
    assert rates(rest)["fcm"] == pytest.approx(FCM_PER_S * 3 / 4 / 2)
    told = paced(tmp_path / "c", lanes="critical", pace_group_share=0.1)
    await told.rebalance(range(PARTITIONS))
    assert rates(told)["fcm"] == pytest.approx(FCM_PER_S * 0.1)


async def test_scope_worker_keeps_the_old_per_worker_meaning(tmp_path: Path) -> None:
    stage = paced(tmp_path, pace_scope="worker")
    await stage.rebalance([0])
    assert rates(stage)["fcm"] == FCM_PER_S
    assert rates(stage)["twilio"] == TWILIO_PER_S


async def test_the_sink_holds_a_send_until_its_worker_owns_a_partition(
    tmp_path: Path, sb: Sandbox, sandbox_providers: ProviderSettings
) -> None:
    """The sink waits on this app's pacer: with no push partition owned the delivery is held
    (not sent, not done); once an assignment gives the worker partitions it goes out. (Only
    the assignment is signalled: a revocation would wait for the held send, which a real
    loader never has, since it reads nothing while it owns nothing.)"""
    app = build_app(stage_settings(tmp_path), store="memory://", providers=sandbox_providers)
    stage = StageHarness(app)
    try:
        await stage.rebalance([])
        raw = delivery_bytes("push", "alice", "fcm-token-1", platform="fcm")
        async with stage.run("sink.push.high") as sink:
            event = await sink.put(raw, key="alice", wait=False)
            await asyncio.sleep(0.5)
            assert sb.sends("fcm") == []
            assert not sink.is_done(event)
            await stage.assign([partition_of("alice", stage.partitions)])
            await sink.settle([event])
        [sent] = sb.sends("fcm")
        assert sent.delivery_id == json.loads(raw)["delivery_id"]
    finally:
        for sender in app.ctx.senders.values():
            await sender.aclose()
