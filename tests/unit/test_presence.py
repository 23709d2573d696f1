"""Presence leases and expiry, the hybrid in-app/push choice, and the gateway replay cursor."""

from __future__ import annotations

from datetime import UTC, datetime

from logic.classify import to_notification
from logic.presence import (
    Lease,
    ReplayCursor,
    connected,
    disconnected,
    gateway_partition,
    online_gateways,
    prefer_in_app,
)
from logic.render import default_renderer
from logic.routing import RoutePlan, plan_deliveries
from logic.rules import load_rules
from logic.validation import decode_event
from schemas.common import Category, Channel, Lane
from schemas.notifications import InboxItem, Notification
from schemas.users import ContactPoints, Device
from tests.factories import event_bytes

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
T = NOW.timestamp()
CONTACTS = ContactPoints(user_id="alice", devices=(Device(token="fcm-abcdefgh", platform="fcm"),))


def leases(table: dict[str, Lease]):  # type: ignore[no-untyped-def]
    return table.get


# -- presence state and expiry ------------------------------------------------------------


def test_a_connected_user_is_online_while_the_gateway_lease_is_live() -> None:
    lease = {"g1": ("e1", T + 30)}
    state = connected(None, "g1", "e1", leases(lease), T)
    assert online_gateways(state, leases(lease), T) == ["g1"]
    assert online_gateways(state, leases(lease), T + 29.9) == ["g1"]
    # No renewal: presence expires with the lease, although no OFFLINE ever came.
    assert online_gateways(state, leases(lease), T + 30) == []


def test_a_renewed_lease_keeps_the_user_online() -> None:
    lease = {"g1": ("e1", T + 30)}
    state = connected(None, "g1", "e1", leases(lease), T)
    lease["g1"] = ("e1", T + 60)  # heartbeat
    assert online_gateways(state, leases(lease), T + 45) == ["g1"]


def test_a_revoked_lease_takes_every_user_of_the_gateway_offline_at_once() -> None:
    lease = {"g1": ("e1", T + 30)}
    state = connected(None, "g1", "e1", leases(lease), T)
    lease["g1"] = ("e1", T)  # graceful shutdown: expires now
    assert online_gateways(state, leases(lease), T) == []


def test_a_restarted_gateway_does_not_inherit_connections_of_its_previous_life() -> None:
    lease = {"g1": ("e1", T + 30)}
    state = connected(None, "g1", "e1", leases(lease), T)
    lease["g1"] = ("e2", T + 60)  # the gateway crashed and came back with a new epoch
    assert online_gateways(state, leases(lease), T + 1) == []
    # The stale entry is pruned at the next write; the new connection counts.
    state = connected(state, "g2", "x", leases(lease), T + 1)
    assert state == {"g2": "x"}


def test_offline_removes_only_its_own_gateway_and_epoch() -> None:
    lease = {"g1": ("e1", T + 30), "g2": ("f1", T + 30)}
    state = connected(None, "g1", "e1", leases(lease), T)
    state = connected(state, "g2", "f1", leases(lease), T)
    assert online_gateways(state, leases(lease), T) == ["g1", "g2"]
    state = disconnected(state, "g1", "e1", leases(lease), T)
    assert online_gateways(state, leases(lease), T) == ["g2"]
    # A late OFFLINE of an older epoch leaves the current connection alone.
    assert disconnected(state, "g2", "f0", leases(lease), T) == {"g2": "f1"}


def test_an_entry_waits_for_its_gateways_first_lease() -> None:
    state = connected(None, "g1", "e1", leases({}), T)
    assert state == {"g1": "e1"}
    assert online_gateways(state, leases({}), T) == []  # not online before a lease exists
    assert online_gateways(state, leases({"g1": ("e1", T + 5)}), T) == ["g1"]


def test_gateway_partition_is_stable_and_in_range() -> None:
    assert gateway_partition("gw-a", 16) == gateway_partition("gw-a", 16)
    assert {gateway_partition(f"gw-{i}", 16) for i in range(200)} == set(range(16))


# -- hybrid push/pull choice ----------------------------------------------------------------


def _plan(kind: str) -> tuple[Notification, RoutePlan]:
    event = decode_event(event_bytes(kind, occurred_at=NOW.isoformat()), 65536)
    n = to_notification(event, load_rules(), NOW)  # type: ignore[arg-type]
    return n, plan_deliveries(n, None, CONTACTS, load_rules(), default_renderer(), NOW)


def _channels(plan: RoutePlan) -> list[Channel]:
    return sorted(d.channel for d in plan.deliveries)


def test_online_user_gets_in_app_now_and_no_push() -> None:
    n, plan = _plan("message")
    assert _channels(plan) == [Channel.IN_APP, Channel.PUSH]
    chosen = prefer_in_app(plan, online=True, lane=n.lane, required=())
    assert _channels(chosen) == [Channel.IN_APP]


def test_offline_user_gets_in_app_into_the_inbox_and_a_push_to_wake_up() -> None:
    n, plan = _plan("message")
    chosen = prefer_in_app(plan, online=False, lane=n.lane, required=())
    assert _channels(chosen) == [Channel.IN_APP, Channel.PUSH]


def test_critical_and_required_push_go_out_whatever_presence_says() -> None:
    n, plan = _plan("payment")
    assert n.lane is Lane.CRITICAL
    assert prefer_in_app(plan, online=True, lane=n.lane, required=()) == plan
    n, plan = _plan("message")
    assert prefer_in_app(plan, online=True, lane=n.lane, required=[Channel.PUSH]) == plan


def test_push_stays_when_there_is_no_in_app_delivery() -> None:
    n, plan = _plan("message")
    push_only = RoutePlan(tuple(d for d in plan.deliveries if d.channel is Channel.PUSH))
    assert prefer_in_app(push_only, online=True, lane=n.lane, required=()) == push_only


# -- replay cursor of one gateway connection -------------------------------------------------


def _item(i: int) -> InboxItem:
    return InboxItem(
        id=f"d{i}",
        seq=i,
        notification_id=f"n{i}",
        category=Category.MESSAGE,
        lane=Lane.HIGH,
        title="t",
        body="b",
        created_at=NOW,
    )


def _ids(items: list[InboxItem]) -> list[str]:
    return [item.id for item in items]


def test_cursor_replays_after_the_last_event_id_then_streams_live_items() -> None:
    cursor = ReplayCursor(last_event_id="d2")
    assert cursor.on_live([_item(5)]) == []  # arrived before the sync: waits
    assert _ids(cursor.on_sync([_item(i) for i in range(1, 5)])) == ["d3", "d4", "d5"]
    assert _ids(cursor.on_live([_item(6)])) == ["d6"]
    assert cursor.on_live([_item(6)]) == []  # a redelivered item is not written twice


def test_fresh_cursor_starts_from_now_but_keeps_items_that_arrived_while_waiting() -> None:
    cursor = ReplayCursor(last_event_id=None)
    cursor.on_live([_item(3)])
    # The sync already holds d3 (the worker wrote the inbox first): still written, once.
    assert _ids(cursor.on_sync([_item(1), _item(2), _item(3)])) == ["d3"]
    assert cursor.on_live([_item(3)]) == []


def test_a_later_sync_fills_the_gap_and_nothing_else() -> None:
    cursor = ReplayCursor(last_event_id=None)
    cursor.on_sync([_item(1)])
    cursor.on_live([_item(2)])
    # d3 reached the inbox while the worker did not know about this gateway yet.
    assert _ids(cursor.on_sync([_item(1), _item(2), _item(3)])) == ["d3"]


def test_without_a_sync_the_cursor_gives_up_and_streams_what_waited() -> None:
    cursor = ReplayCursor(last_event_id="d1")
    cursor.on_live([_item(4)])
    assert _ids(cursor.give_up_waiting()) == ["d4"]
    assert cursor.synced
    assert _ids(cursor.on_live([_item(5)])) == ["d5"]
