"""The worker's readiness probe: GET /health."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from faust.web import View

if TYPE_CHECKING:
    from sinks.context import SinkContext
    from streams.clarion_app import ClarionApp


def install(app: ClarionApp, ctx: SinkContext) -> None:
    hub = ctx.hub

    @app.page("/health")
    class Health(View):  # type: ignore[misc]
        """Readiness: 200 once tables are recovered and partitions are assigned."""

        async def get(self, request: web.Request) -> web.Response:
            assigned = len(app.consumer.assignment()) if app.consumer else 0
            recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
            body: dict[str, Any] = {
                "ready": bool(recovered and assigned and not app.rebalancing),
                "assigned_partitions": assigned,
                "sse_connections": hub.connections(),
            }
            return web.Response(
                text=json.dumps(body),
                status=200 if body["ready"] else 503,
                content_type="application/json",
            )
