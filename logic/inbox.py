"""The per-user in-app inbox: the last N items, and what a reconnecting client missed."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.notifications import InboxItem


def contains(items: Sequence[InboxItem], item_id: str) -> bool:
    return any(item.id == item_id for item in items)


def append_item(items: Sequence[InboxItem], item: InboxItem, limit: int) -> list[InboxItem]:
    """Append and keep the newest `limit` items."""
    return [*items, item][-limit:]


def items_after(items: Sequence[InboxItem], last_seen_id: str | None) -> list[InboxItem]:
    """Items newer than `last_seen_id`; all of them if the id is unknown or aged out,
    none if the client has no last id (a fresh client starts from now)."""
    if last_seen_id is None:
        return []
    for index, item in enumerate(items):
        if item.id == last_seen_id:
            return list(items[index + 1 :])
    return list(items)


def next_seq(items: Sequence[InboxItem]) -> int:
    return items[-1].seq + 1 if items else 1


def mark(items: Sequence[InboxItem], notification_ids: set[str], *, read: bool) -> list[InboxItem]:
    """The items with those notifications marked seen (and read, when `read`)."""
    return [
        item.model_copy(update={"seen": True, "read": item.read or read})
        if item.notification_id in notification_ids
        else item
        for item in items
    ]
