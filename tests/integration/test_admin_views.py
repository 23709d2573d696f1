"""Operator views on two real workers in one consumer group: every key is answered through
either worker (routed to the owner of its partition), the token guards them, contact points
come back masked, composite tables are found by user id, windows and lags are merged."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from logic.partitioning import partition_of
from streams.catalog import CONTACTS, FOLLOWS, PREFERENCES
from tests.factories import event_dict
from tests.integration.conftest import Pipeline, start_pipeline
from tests.integration.kafka_io import produce, produce_json

pytestmark = pytest.mark.integration

PARTITIONS = 4
TOKEN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Group:
    a: Pipeline
    b: Pipeline

    @property
    def urls(self) -> list[str]:
        return [self.a.url, self.b.url]

    @property
    def bootstrap(self) -> str:
        return self.a.bootstrap

    def topic(self, name: str) -> str:
        return self.a.topic(name)


@pytest.fixture(scope="module")
def group(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    run = uuid.uuid4().hex[:8]
    shared: dict[str, Any] = {
        "partitions": PARTITIONS,
        "prefix": f"adm{run}.",
        "app_id": f"clarion-adm{run}",
        "CLARION_ADMIN_TOKEN": TOKEN,
    }
    a = start_pipeline(kafka_bootstrap, tmp_path_factory.mktemp("admin-a"), **shared)
    try:
        b = start_pipeline(kafka_bootstrap, tmp_path_factory.mktemp("admin-b"), **shared)
    except BaseException:
        a.worker.stop()
        raise
    try:
        yield Group(a, b)
    finally:
        b.worker.stop()
        a.worker.stop()


async def _get(url: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url, headers=AUTH if headers is None else headers, params=params)


async def _eventually(
    probe: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 90.0
) -> Any:
    """Poll until `probe` returns something truthy (the last error says why it did not)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            found = await probe()
            if found:
                return found
        except (AssertionError, httpx.HTTPError, KeyError) as exc:
            last = exc
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s}s (last: {last!r})")


async def _settled(g: Group) -> dict[str, set[int]]:
    """Both workers answer and between them own every partition exactly once."""

    async def probe() -> dict[str, set[int]] | None:
        owners: dict[str, set[int]] = {}
        for url in g.urls:
            r = await _get(f"{url}/admin/lags")
            if r.status_code != 200:
                return None
            body = r.json()
            assert not any(w.get("error") for w in body["workers"]), body["workers"]
            owners = {w["url"]: set(w["partitions"]) for w in body["workers"]}
        if set(owners) != set(g.urls) or not all(owners.values()):
            return None
        a, b = owners.values()
        return owners if a | b == set(range(PARTITIONS)) and not a & b else None

    return await _eventually(probe, "two workers sharing the partitions")  # type: ignore[no-any-return]


def _uids_covering_every_partition() -> list[str]:
    by_partition: dict[int, str] = {}
    while len(by_partition) < PARTITIONS:
        uid = f"adm-{uuid.uuid4().hex[:10]}"
        by_partition.setdefault(partition_of(uid, PARTITIONS), uid)
    return [by_partition[p] for p in range(PARTITIONS)]


def _contacts(uid: str) -> dict[str, Any]:
    return {
        "user_id": uid,
        "devices": [{"token": f"fcm-device-token-{uid}-0123456789abcdef", "platform": "fcm"}],
        "email": f"{uid}.person@example.com",
        "phone": "+15557654321",
        "webhook_url": f"https://hooks.example.com/{uid}/private-path",
    }


def _raw_contact_points(uid: str) -> list[str]:
    c = _contacts(uid)
    return [c["devices"][0]["token"], c["email"], c["phone"], "7654321", c["webhook_url"]]


async def test_the_token_guards_every_admin_view(group: Group) -> None:
    await _settled(group)
    for path in ("/admin/tables/contacts/alice", "/admin/windows", "/admin/lags"):
        missing = await _get(group.a.url + path, headers={})
        assert missing.status_code == 401, path
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await _get(group.b.url + path, headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 403, path
        assert "wrong admin token" in wrong.json()["error"]
        basic = await _get(group.a.url + path, headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401, path
    # The description holds no data and is open, so tools can load it.
    assert (await _get(group.a.url + "/admin/openapi.json", headers={})).status_code == 200


async def test_user_tables_answer_through_either_worker_masked(group: Group) -> None:
    owners = await _settled(group)
    owner_of = {p: url for url, parts in owners.items() for p in parts}
    uids = _uids_covering_every_partition()
    for uid in uids:
        await produce_json(group.bootstrap, group.topic(CONTACTS), _contacts(uid), uid)
        prefs = {"user_id": uid, "locale": "en", "disabled_channels": ["sms"]}
        await produce_json(group.bootstrap, group.topic(PREFERENCES), prefs, uid)

    for uid in uids:
        expected_owner = owner_of[partition_of(uid, PARTITIONS)]

        async def contacts_seen(uid: str = uid) -> list[dict[str, Any]]:
            bodies = []
            for url in group.urls:  # the owner, and the other worker (which forwards)
                r = await _get(f"{url}/admin/tables/contacts/{uid}")
                assert r.status_code == 200, r.text
                if not r.json()["rows"]:
                    return []
                bodies.append(r.json())
            return bodies

        bodies = await _eventually(contacts_seen, f"contacts of {uid}")
        for body in bodies:
            assert body["served_by"] == expected_owner
            assert body["partition"] == partition_of(uid, PARTITIONS)
            assert body["table"] == "contacts" and body["key"] == uid
            value = body["rows"][0]["value"]
            assert value["email"] == f"{uid[0]}***@example.com"
            assert value["webhook_url"] == "https://hooks.example.com/***"
            text = json.dumps(body)
            for raw in _raw_contact_points(uid):
                assert raw not in text, f"{raw} leaked in {text}"

        for url in group.urls:
            r = await _get(f"{url}/admin/tables/preferences/{uid}")
            assert r.status_code == 200
            assert r.json()["rows"][0]["value"]["disabled_channels"] == ["sms"]
            assert r.json()["served_by"] == expected_owner

    # A key owned by each worker was answered through both: both owners appear.
    assert {owner_of[partition_of(u, PARTITIONS)] for u in uids} == set(group.urls)


async def test_composite_tables_by_user_id(group: Group) -> None:
    await _settled(group)
    uids = _uids_covering_every_partition()
    for uid in uids:
        await produce_json(group.bootstrap, group.topic(CONTACTS), _contacts(uid), uid)
    for uid in uids:
        await _eventually(lambda uid=uid: _rows(group.a.url, "contacts", uid), f"contacts of {uid}")
        # A message (high lane): delivered at once to in-app (inbox) and push, taking a
        # push token from the user's bucket.
        event = event_dict("message", recipient_id=uid)
        await produce_json(group.bootstrap, group.topic("events.messaging"), event, uid)

    for uid in uids:
        for url in group.urls:
            inbox = await _eventually(
                lambda url=url, uid=uid: _rows(url, "inbox", uid), f"inbox of {uid} via {url}"
            )
            assert len(inbox) == 1 and inbox[0]["key"] == uid
            assert inbox[0]["value"][0]["category"] == "message"
            buckets = await _eventually(
                lambda url=url, uid=uid: _rows(url, "buckets", uid), f"buckets of {uid}"
            )
            assert [b["key"] for b in buckets] == ["push"]
            assert set(buckets[0]["value"]) == {"tokens", "updated_at"}
            # Nothing of another user's rows (their ids share no prefix with this one).
            ledger = await _get(f"{url}/admin/tables/ledger/{uid}")
            assert ledger.status_code == 200 and ledger.json()["rows"] == []


async def _rows(url: str, table: str, key: str, **params: Any) -> list[dict[str, Any]]:
    r = await _get(f"{url}/admin/tables/{table}/{key}", **params)
    assert r.status_code == 200, r.text
    return list(r.json()["rows"])


async def test_open_windows_and_digests_are_merged_across_workers(group: Group) -> None:
    owners = await _settled(group)
    owner_of = {p: url for url, parts in owners.items() for p in parts}
    uid = _uids_covering_every_partition()[0]
    # Quiet hours from an hour ago to two hours ahead hold the user's social windows open
    # (deadline moved to the end of quiet hours), so they can be looked at.
    now = datetime.now(UTC)
    quiet = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=2)):%H:%M}"
    prefs = {"user_id": uid, "timezone": "UTC", "quiet_hours": quiet}
    await produce_json(group.bootstrap, group.topic(PREFERENCES), prefs, uid)
    await _eventually(lambda: _rows(group.a.url, "preferences", uid), "preferences")
    likes = [
        json.dumps(event_dict("like", recipient_id=uid, actor_id=f"fan{i}")).encode()
        for i in range(3)
    ]
    await produce(group.bootstrap, group.topic("events.social"), likes, key=uid.encode())

    # Through the worker that does NOT own the user: its own part is empty for this user,
    # the owner's part comes from the merge.
    other = next(u for u in group.urls if u != owner_of[partition_of(uid, PARTITIONS)])

    async def window() -> dict[str, Any] | None:
        r = await _get(f"{other}/admin/windows", limit="1000")
        assert r.status_code == 200, r.text
        body = r.json()
        assert {w["url"] for w in body["workers"]} == set(group.urls)
        mine = [w for w in body["windows"] if w["recipient_id"] == uid]
        return mine[0] if mine and mine[0]["count"] == 3 else None

    w = await _eventually(window, "the held window with 3 likes")
    assert w["lane"] == "social" and w["partition"] == partition_of(uid, PARTITIONS)
    assert w["group_key"] == "like:photo:p1" and w["actors"] == 3
    assert w["deadline"] > w["window_end"]  # held by quiet hours

    local = await _get(f"{other}/admin/windows", scope="local", limit="1000")
    assert uid not in json.dumps(local.json()["windows"])
    digests = await _rows(other, "digests", uid)
    assert [d["key"] for d in digests] == ["like:photo:p1"]
    assert digests[0]["value"]["count"] == 3


async def test_lane_lags_from_every_worker(group: Group) -> None:
    owners = await _settled(group)
    r = await _get(f"{group.b.url}/admin/lags")
    assert r.status_code == 200
    lanes = {lane["lane"]: lane for lane in r.json()["lanes"]}
    assert set(lanes) == {"critical", "high", "social", "bulk"}
    for name, lane in lanes.items():
        rows = [p for p in lane["partitions"] if p["topic"] == group.topic(f"notifications.{name}")]
        assert sorted(p["partition"] for p in rows) == list(range(PARTITIONS))
        for p in rows:
            assert p["served_by"] in owners and p["partition"] in owners[p["served_by"]]
            if p["highwater"] is not None and p["lag"] is not None:
                assert p["lag"] == max(0, p["highwater"] - (p["committed"] or 0))
        assert lane["total_lag"] == sum(p["lag"] or 0 for p in lane["partitions"])


async def test_followers_are_gathered_from_every_partition(group: Group) -> None:
    await _settled(group)
    celeb = f"celeb-{uuid.uuid4().hex[:8]}"
    fans = [f"fan-{i}-{uuid.uuid4().hex[:6]}" for i in range(12)]
    for fan in fans:
        edge = {"actor_id": celeb, "follower_id": fan}
        await produce_json(group.bootstrap, group.topic(FOLLOWS), edge, f"{celeb}/{fan}")

    async def all_followers(url: str) -> dict[str, Any] | None:
        r = await _get(f"{url}/admin/tables/followers/{celeb}")
        assert r.status_code == 200, r.text
        body = r.json()
        return body if len(body["rows"]) == len(fans) else None

    for url in group.urls:
        body = await _eventually(lambda url=url: all_followers(url), f"followers via {url}")
        assert sorted(row["key"] for row in body["rows"]) == sorted(fans)
        assert {w["url"] for w in body["workers"]} == set(group.urls)
        assert len({row["partition"] for row in body["rows"]}) > 1  # spread, and merged
    few = await _get(f"{group.a.url}/admin/tables/followers/{celeb}", limit="5")
    assert len(few.json()["rows"]) == 5 and few.json()["truncated"] is True

    # A broadcast to them: the fan-out's progress rows ("<event id>/<partition>") live in
    # every partition and come back merged, through either worker.
    live = event_dict("live_started", actor_id=celeb, audience={"kind": "followers", "of": celeb})
    await produce_json(group.bootstrap, group.topic("events.social"), live, celeb)

    async def fanout_done(url: str) -> list[dict[str, Any]] | None:
        rows = await _rows(url, "fanout", live["event_id"])
        done = len(rows) == PARTITIONS and all(r["value"]["done"] for r in rows)
        return rows if done else None

    for url in group.urls:
        rows = await _eventually(lambda url=url: fanout_done(url), f"fan-out progress via {url}")
        assert sorted(r["partition"] for r in rows) == list(range(PARTITIONS))
        assert sorted(r["key"] for r in rows) == [str(p) for p in range(PARTITIONS)]
        assert sum(r["value"]["sent"] for r in rows) == len(fans)


async def test_openapi_lists_every_admin_route_and_is_valid(group: Group) -> None:
    from streams.app import build_app
    from streams.settings import get_settings

    app = build_app(get_settings())  # the same views the workers register

    doc = (await _get(group.a.url + "/admin/openapi.json", headers={})).json()
    validate(doc)
    registered = {path for path in app.web.views if path.startswith("/admin")}
    assert set(doc["paths"]) == registered
    for path in registered - {"/admin/openapi.json"}:
        r = await _get(group.b.url + path.replace("{key}", "nobody"))
        assert r.status_code == 200, (path, r.text)


async def test_bad_parameters_and_logs_without_contact_points(group: Group) -> None:
    await _settled(group)
    assert (await _get(f"{group.a.url}/admin/tables/inbox/bad%20id")).status_code == 400
    assert (await _get(f"{group.a.url}/admin/windows", limit="0")).status_code == 400
    uid = _uids_covering_every_partition()[1]
    # An invalid record (phone without +) is logged as invalid, without the number.
    bad = {"user_id": uid, "phone": "15559876543", "email": "broken email@example.com"}
    await produce_json(group.bootstrap, group.topic(CONTACTS), bad, uid)

    def logs() -> str:
        return "".join(p.worker.log_path.read_text(errors="replace") for p in (group.a, group.b))

    await _eventually(
        lambda: asyncio.sleep(
            0, result=f"invalid contacts for {uid!r}".replace("'", "b'", 1) in logs()
        ),
        "the invalid contacts record in the log",
    )
    text = logs()
    assert "15559876543" not in text and "broken email" not in text
    for raw in ("+15557654321", "0123456789abcdef", "private-path", ".person@example.com"):
        assert raw not in text, f"{raw} in a worker log"


async def test_lags_include_the_delivery_topics_read_by_topic_loaders(group: Group) -> None:
    """The in-app sink reads `deliveries.in_app.<lane>` through topic loaders, not Faust's
    consumer: their partitions are in the lags all the same, each from its owner."""
    owners = await _settled(group)
    topic = group.topic("deliveries.in_app.high")
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        r = await _get(f"{group.a.url}/admin/lags")
        assert r.status_code == 200
        [high] = [lane for lane in r.json()["lanes"] if lane["lane"] == "high"]
        rows = [p for p in high["partitions"] if p["topic"] == topic]
        if sorted(p["partition"] for p in rows) == list(range(PARTITIONS)):
            break
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.5)
    for p in rows:
        assert p["served_by"] in owners and p["partition"] in owners[p["served_by"]]
