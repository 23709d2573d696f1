"""Records produced by a foreign client (kcat: librdkafka's CRC32 partitioner, random without
a key) are routed exactly as records from Clarion's own murmur2 producers: preferences and
contacts reach the route's tables, dedupe holds across keys, and like windows stay apart."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from logic.partitioning import partition_of
from schemas.common import Channel, Lane
from streams.catalog import (
    CONTACTS,
    EVENTS_REKEYED,
    PREFERENCES,
    PROFILES_REKEYED,
    delivery_topic,
)
from tests.factories import event_dict
from tests.integration.conftest import FAST_RULES, Figure, Pipeline, start_pipeline
from tests.integration.kafka_io import collect, values
from tests.integration.kcat import (
    kcat_binary,
    kcat_produce,
    kcat_produce_many,
    librdkafka_partition,
)

pytestmark = pytest.mark.integration

PARTITIONS = 4
WINDOW_S = 10
DELIVERY_TOPICS = [delivery_topic(c, lane) for c in Channel for lane in Lane]


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    kcat_binary()  # skip before booting a worker if kcat is missing
    path = tmp_path_factory.mktemp("rules") / "rules.toml"
    text = FAST_RULES.read_text()
    like, end = text.index("[categories.like]"), text.index("[categories.comment]")
    path.write_text(
        text[:like] + text[like:end].replace("window_s = 3", f"window_s = {WINDOW_S}") + text[end:]
    )
    p = start_pipeline(
        kafka_bootstrap,
        tmp_path_factory.mktemp("foreign"),
        partitions=PARTITIONS,
        CLARION_RULES_PATH=str(path),
    )
    try:
        yield p
    finally:
        p.worker.stop()


def kcat_partition(key: str) -> int:
    return librdkafka_partition(key, PARTITIONS)


def misplaced_users(prefix: str, n: int) -> list[str]:
    """Users whose kcat partition differs from their murmur2 partition, so every record of
    theirs that kcat produces lands where the co-partitioned route never reads."""
    users, i = [], 0
    while len(users) < n:
        u = f"{prefix}-{i}"
        if kcat_partition(u) != partition_of(u, PARTITIONS):
            users.append(u)
        i += 1
    return users


async def deliveries(p: Pipeline, keep_key: set[bytes], n: int, timeout_s: float) -> list[dict]:
    records = await collect(
        p.bootstrap,
        [p.topic(t) for t in DELIVERY_TOPICS],
        until=lambda kept: len(kept) >= n,
        keep=lambda r: r.key in keep_key,
        timeout_s=timeout_s,
    )
    return values(records)


async def test_profiles_from_a_librdkafka_producer_reach_the_route(
    pipeline: Pipeline, uid: str
) -> None:
    users = misplaced_users(uid, 6)
    for u in users:
        contact = {"user_id": u, "devices": [{"token": f"fcm-{u}", "platform": "fcm"}]}
        contact["email"] = f"{u}@example.com"
        kcat_produce(pipeline.bootstrap, pipeline.topic(CONTACTS), u, json.dumps(contact).encode())
        prefs = {"user_id": u, "disabled_channels": ["email"]}
        kcat_produce(pipeline.bootstrap, pipeline.topic(PREFERENCES), u, json.dumps(prefs).encode())
    # Both reached the tables through the re-key topic, on the user's own partition.
    forwarded = await collect(
        pipeline.bootstrap,
        [pipeline.topic(PROFILES_REKEYED)],
        until=lambda kept: len(kept) >= 2 * len(users),
        keep=lambda r: r.key is not None and r.key.decode() in users,
        timeout_s=30,
    )
    assert len(forwarded) == 2 * len(users)
    assert all(r.partition == partition_of(r.key.decode(), PARTITIONS) for r in forwarded)
    for table in ("contacts", "preferences"):
        rows = await collect(
            pipeline.bootstrap,
            [f"{pipeline.app_id}-{table}-changelog"],
            until=lambda kept: len({r.key for r in kept}) >= len(users),
            keep=lambda r: r.key is not None and r.key.decode() in users,
            timeout_s=30,
        )
        assert {r.key.decode() for r in rows} == set(users), table
        # The row sits in the user's own partition: the one the route reads.
        assert all(r.partition == partition_of(r.key.decode(), PARTITIONS) for r in rows)

    # A payment for each user, again from kcat: push goes to the device that only the
    # contacts table knows, and email (required for payments) still goes out.
    kcat_produce_many(
        pipeline.bootstrap,
        pipeline.topic("events.payments"),
        [(u, json.dumps(event_dict("payment", recipient_id=u)).encode()) for u in users],
    )
    keys = {u.encode() for u in users}
    found = await deliveries(pipeline, keys, 3 * len(users), timeout_s=45)
    by_user = {
        u: sorted((d["channel"], d["target"]["address"]) for d in found if d["recipient_id"] == u)
        for u in users
    }
    assert by_user == {
        u: [("email", f"{u}@example.com"), ("in_app", u), ("push", f"fcm-{u}")] for u in users
    }


async def test_dedupe_holds_when_one_event_comes_under_several_keys(
    pipeline: Pipeline, uid: str
) -> None:
    first = event_dict("payment", recipient_id=uid)
    raw = json.dumps(first).encode()
    # The same event under its recipient's key, two other keys and no key at all (kcat then
    # picks a random partition): four records on up to four ingress partitions.
    kcat_produce_many(
        pipeline.bootstrap,
        pipeline.topic("events.payments"),
        [(uid, raw), (f"{uid}-other", raw), ("someone-else", raw), (None, raw)],
    )
    second = event_dict("payment", recipient_id=uid)
    kcat_produce(
        pipeline.bootstrap, pipeline.topic("events.payments"), None, json.dumps(second).encode()
    )
    # No contact points: each payment is one in-app delivery.
    found = await deliveries(pipeline, {uid.encode()}, 2, timeout_s=30)
    await asyncio.sleep(2.0)
    found = await deliveries(pipeline, {uid.encode()}, 3, timeout_s=2)
    assert [d["channel"] for d in found] == ["in_app", "in_app"]
    assert len({d["notification_id"] for d in found}) == 2


async def at_window_start(margin_s: float = 0.5) -> None:
    now = time.time()
    start = math.ceil(now / WINDOW_S) * WINDOW_S
    if start - now > WINDOW_S - 3:  # just past a boundary: enough of this window is left
        start = math.floor(now / WINDOW_S) * WINDOW_S
    await asyncio.sleep(max(0.0, start + margin_s - now))


async def test_like_storm_from_kcat_keeps_each_photos_window_apart(
    pipeline: Pipeline, uid: str, figure: Figure
) -> None:
    """4 photos x 2 windows, every like keyed by its actor (so spread by CRC32 over every
    partition): 8 notifications, each about one photo, with every like counted once."""
    user = misplaced_users(uid, 1)[0]
    photos = [f"ph{i}" for i in range(4)]
    per_photo = 150
    in_app = pipeline.topic(delivery_topic(Channel.IN_APP, Lane.SOCIAL))

    async def storm(round_: int) -> None:
        await at_window_start()
        now = datetime.now(UTC).isoformat()
        records = []
        for i in range(per_photo):
            for photo in photos:
                actor = f"r{round_}-{photo}-a{i}"
                event = event_dict(
                    "like",
                    recipient_id=user,
                    actor_id=actor,
                    actor_name=actor,
                    occurred_at=now,
                    event_id=uuid.uuid4().hex,
                    object={"kind": "photo", "id": photo},
                )
                records.append((actor, json.dumps(event).encode()))
        kcat_produce_many(pipeline.bootstrap, pipeline.topic("events.social"), records)

    async def notifications(n: int, timeout_s: float) -> list[dict]:
        records = await collect(
            pipeline.bootstrap,
            [in_app],
            until=lambda kept: len(kept) >= n,
            keep=lambda r: r.key == user.encode(),
            timeout_s=timeout_s,
        )
        return values(records)

    await storm(0)
    first = await notifications(len(photos), timeout_s=WINDOW_S + 45)
    assert len(first) == len(photos), [(f["body"], f["count"]) for f in first]
    await storm(1)
    both = await notifications(2 * len(photos), timeout_s=WINDOW_S + 45)
    await asyncio.sleep(3)  # anything extra would have been flushed by now
    both = await notifications(2 * len(photos) + 1, timeout_s=1)

    # Which photo and round a notification is about: from the actors its text names.
    def about(f: dict) -> set[tuple[str, str]]:
        return {(m[0], m[1]) for m in re.findall(r"r(\d)-(ph\d)-a\d+", f["body"])}

    summary = sorted((sorted(about(f)), f["count"]) for f in both)
    figure(f"kcat like storm: {len(both)} notifications {summary}")
    assert len({f["notification_id"] for f in both}) == len(both)
    assert all(len(about(f)) == 1 for f in both), summary  # never two photos merged
    assert Counter(next(iter(about(f))) for f in both) == {
        (str(r), p): 1 for r in range(2) for p in photos
    }
    assert [f["count"] for f in both] == [per_photo] * 8
    rekeyed = await collect(
        pipeline.bootstrap,
        [pipeline.topic(EVENTS_REKEYED)],
        until=lambda kept: False,
        keep=lambda r: r.key == user.encode(),
        timeout_s=3,
    )
    # Every like not already on the user's murmur2 partition went through the re-key hop.
    off_partition = sum(
        1
        for r in range(2)
        for i in range(per_photo)
        for photo in photos
        if kcat_partition(f"r{r}-{photo}-a{i}") != partition_of(user, PARTITIONS)
    )
    assert len(rekeyed) == off_partition
