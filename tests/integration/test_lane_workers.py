"""Lane-scoped workers: the critical lane in its own consumer group and process."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from streams.catalog import CONTACTS
from tests.factories import event_bytes
from tests.integration.conftest import start_pipeline
from tests.integration.kafka_io import collect, produce, produce_json

pytestmark = pytest.mark.integration


async def test_critical_and_the_other_lanes_run_in_separate_groups(
    kafka_bootstrap: str, tmp_path: Path, uid: str
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    critical = start_pipeline(
        kafka_bootstrap,
        tmp_path / "critical",
        prefix=prefix,
        app_id=f"{prefix}critical",
        CLARION_LANES="critical",
    )
    try:
        rest = start_pipeline(
            kafka_bootstrap,
            tmp_path / "rest",
            prefix=prefix,
            app_id=f"{prefix}rest",
            CLARION_LANES="high,social,bulk",
        )
        try:
            contacts = {"user_id": uid, "devices": [{"token": f"fcm-{uid}-t", "platform": "fcm"}]}
            await produce_json(kafka_bootstrap, prefix + CONTACTS, contacts, uid)
            await produce(
                kafka_bootstrap,
                prefix + "events.payments",
                [event_bytes("payment", recipient_id=uid)],
                uid.encode(),
            )
            await produce(
                kafka_bootstrap,
                prefix + "events.social",
                [event_bytes("follow", recipient_id=uid)],
                uid.encode(),
            )

            async def inbox_of(app_id: str) -> list[str]:
                got = await collect(
                    kafka_bootstrap,
                    [f"{app_id}-inbox-changelog"],
                    until=lambda kept: bool(kept),
                    timeout_s=30,
                    keep=lambda r: r.key == uid.encode(),
                )
                return [item["category"] for item in json.loads(got[-1].value)] if got else []

            # Each group delivered its own lane's in-app item, and only that.
            assert await inbox_of(critical.app_id) == ["payment"]
            assert await inbox_of(rest.app_id) == ["follow"]
            # Both groups keep their own copy of the user's contact points.
            for app_id in (critical.app_id, rest.app_id):
                got = await collect(
                    kafka_bootstrap,
                    [f"{app_id}-contacts-changelog"],
                    until=lambda kept: bool(kept),
                    timeout_s=30,
                    keep=lambda r: r.key == uid.encode(),
                )
                assert got, f"{app_id} never applied the contacts"
        finally:
            rest.worker.stop()
    finally:
        critical.worker.stop()
