"""State of an open aggregation window (the `digests` table)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from schemas.common import Lane
from schemas.notifications import Notification


class DigestWindow(BaseModel):
    """Notifications for one (recipient, group key) gathered in one tumbling window.

    Times are unix seconds. `deadline` starts at the window's end and moves later while the
    user is in quiet hours or out of rate-limit tokens: the window then keeps gathering and
    goes out as one notification when it may.
    """

    model_config = ConfigDict(frozen=True)

    recipient_id: str
    group_key: str
    lane: Lane
    window_start: float
    window_end: float
    deadline: float
    count: int
    actor_ids: tuple[str, ...]
    actor_names: tuple[str, ...]
    # The first notification supplies the object and data the template renders.
    first: Notification
    expires_at: float | None = None
    # Highest ingress offset folded into this window, per ingress "topic:partition": a copy
    # at or below the partition's watermark was already counted (see agents/digest.py).
    sources: dict[str, int] = {}
