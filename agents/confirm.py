"""confirm: what clients say about their notifications (POST /inapp/ack) — marks inbox
items seen/read, records confirmations (a read confirms: escalation stops) and writes
seen/read receipts.

Every group of a lane-split deployment marks its own inbox and records the confirmation
(its escalate agent reads `confirmed`), but each receipt is written by one group: the one
whose inbox holds the item (it serves the item's lane). An id in no inbox gets its
`not_in_inbox` receipt only from a group that serves every lane; a split group cannot tell
"in no inbox" from "in another group's inbox", so it writes none (logic/ownership.py)."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

import faust

from logic.inbox import mark
from logic.ownership import owns_lane, serves_every_lane
from logic.receipts import for_confirmation
from schemas.control import ClientAction, Confirmation
from schemas.notifications import InboxItem
from streams import receipts
from tables import changelog, keys

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext


def _marked(items: list[InboxItem] | None, *, ids: set[str], read: bool) -> list[InboxItem]:
    return mark(items or [], ids, read=read)


def install(app: ClarionApp, ctx: StageContext) -> None:
    topics, inbox, confirmed = ctx.topics, ctx.tables.inbox, ctx.tables.confirmed

    @app.agent(topics.confirmations, name="confirm", concurrency=1)
    async def confirm(stream: faust.StreamT[Confirmation]) -> None:
        served = app.settings.served_lanes
        async for c in stream:
            key = keys.user_key(c.recipient_id)
            ids = set(c.notification_ids)
            read = c.action is ClientAction.READ
            # Read and written with no wait between: the in-app sink (another agent,
            # or a route delivering in place) writes the same row (tables/changelog.py).
            old, _ = await changelog.update(inbox, key, partial(_marked, ids=ids, read=read))
            by_id = {item.notification_id: item for item in old or []}
            if read:
                for nid in ids:
                    confirmed[keys.confirmed_key(c.recipient_id, nid)] = time.time()
            futures: list[Any] = []
            for nid in sorted(ids):
                item = by_id.get(nid)
                if not (owns_lane(served, item.lane) if item else serves_every_lane(served)):
                    continue  # another group's receipt to write
                futures.append(await receipts.send(ctx, for_confirmation(c, nid, item)))
            for future in futures:
                await future
