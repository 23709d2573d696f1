"""Tumbling aggregation windows: which window a notification joins, and what comes out.

Times are unix seconds taken from the lane record's Kafka timestamp (when ingest put it on
the lane), not from the clock at processing time, so reprocessing after a crash puts every
notification back into the window it belonged to.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

from logic.rules import CategoryRule
from schemas.digests import DigestWindow
from schemas.notifications import Notification

_NAMESPACE = uuid.UUID("0b7f4c52-3c1e-4d55-9a1e-7d6a4f2b8e11")


def group_key(n: Notification, rule: CategoryRule) -> str:
    """What one aggregated notification gathers for its recipient."""
    match rule.group_by:
        case "category":
            return n.category.value
        case "conversation":
            return f"{n.category.value}:{n.data.get('conversation_id', n.object.id)}"
        case _:
            return f"{n.category.value}:{n.object.kind}:{n.object.id}"


def window_time(occurred_at: float, record_time: float) -> float:
    """The instant that places a notification in a window: when the event happened, so a
    crash that interrupts ingest cannot push the rest of a burst into the next window;
    but never later than when ingest saw it, so a producer's fast clock cannot hold it back."""
    return min(occurred_at, record_time)


def aligned_window(ts: float, size: float) -> tuple[float, float]:
    start = math.floor(ts / size) * size
    return start, start + size


def _with_source(sources: dict[str, int], n: Notification) -> dict[str, int]:
    if n.source_tp is None or n.source_offset is None:
        return sources
    return sources | {n.source_tp: max(sources.get(n.source_tp, -1), n.source_offset)}


def already_counted(watermarks: dict[str, int], n: Notification) -> bool:
    """Ingest forwards each ingress partition in offset order, so within one lane partition
    the ingress offsets only grow; one at or below the watermark is a replayed copy."""
    if n.source_tp is None or n.source_offset is None:
        return False
    return n.source_offset <= watermarks.get(n.source_tp, -1)


def open_window(
    n: Notification,
    group: str,
    ts: float,
    size: float,
    closed_until: float,
    hold_until: float | None = None,
) -> DigestWindow:
    """A new window for `n`. A notification older than what the partition has already
    flushed (`closed_until`) joins the window that is open now: its own window is gone, and
    reopening it would count it in a second notification with the same id."""
    start, end = aligned_window(max(ts, closed_until), size)
    return DigestWindow(
        recipient_id=n.recipient_id,
        group_key=group,
        lane=n.lane,
        window_start=start,
        window_end=end,
        deadline=max(end, hold_until or end),
        count=n.count,
        actor_ids=(n.actor_id,),
        actor_names=(n.actor_name or n.actor_id,),
        first=n,
        expires_at=n.expires_at.timestamp() if n.expires_at else None,
        sources=_with_source({}, n),
    )


def add_to_window(
    w: DigestWindow, n: Notification, max_actors: int, hold_until: float | None
) -> DigestWindow:
    actor_ids, actor_names = w.actor_ids, w.actor_names
    if len(actor_ids) < max_actors and n.actor_id not in actor_ids:
        actor_ids = (*actor_ids, n.actor_id)
        actor_names = (*actor_names, n.actor_name or n.actor_id)
    expires = n.expires_at.timestamp() if n.expires_at else None
    return w.model_copy(
        update={
            "count": w.count + n.count,
            "actor_ids": actor_ids,
            "actor_names": actor_names,
            "deadline": max(w.deadline, hold_until or 0.0),
            "expires_at": max(filter(None, (w.expires_at, expires)), default=None),
            "sources": _with_source(w.sources, n),
        }
    )


def belongs_to(w: DigestWindow, ts: float) -> bool:
    """Whether a notification stamped `ts` joins the open window `w` rather than the next.
    A held window (deadline past its end) keeps gathering until it goes out."""
    return ts < max(w.window_end, w.deadline)


def aggregate_id(w: DigestWindow) -> str:
    """Deterministic: re-flushing the same window after a crash yields the same id."""
    return uuid.uuid5(_NAMESPACE, f"{w.recipient_id}\x1f{w.group_key}\x1f{w.window_start}").hex


def to_notification(w: DigestWindow) -> Notification:
    first = w.first
    if w.count == 1:
        return first
    return first.model_copy(
        update={
            "notification_id": aggregate_id(w),
            "count": w.count,
            "actors": w.actor_names,
            "actor_id": w.actor_ids[0],
            "actor_name": w.actor_names[0],
            "expires_at": datetime.fromtimestamp(w.expires_at, UTC) if w.expires_at else None,
        }
    )
