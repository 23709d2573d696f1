"""The in-app inbox page: GET /inbox (HTML, its script and stylesheet) and GET /inapp/inbox
(the signed-in user's inbox as JSON, with seen/read flags).

The page pulls /inapp/inbox, then follows /inapp/stream (SSE) from the newest item it has,
and marks items read through POST /inapp/ack (sinks/inapp_web.py). A user's inbox lives on the
worker that owns their partition, so both the page and the JSON endpoint redirect there:
the page's own requests then stay same-origin.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web
from faust.web import View

from logic.tokens import InvalidToken, verify_token
from sinks.client_auth import json_error, token_from
from tables import keys

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext

_STATIC = resources.files("sinks") / "static"
# No inline script or style, nothing from elsewhere: injected markup could not run even if
# the page's script ever put notification text into the DOM as HTML (it never does).
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# The token is in the page's URL: never send it on to the sites notifications link to.
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _asset(name: str) -> str:
    return (_STATIC / name).read_text(encoding="utf-8")


def install(app: ClarionApp, ctx: StageContext) -> None:
    inbox = ctx.tables.inbox

    def _user(token: str | None) -> str | None:
        if not token:
            return None
        try:
            return verify_token(token, app.settings.inapp_token_secret.get_secret_value())
        except InvalidToken:
            return None

    def _owner_url(user_id: str) -> str | None:
        """The owning worker's base URL when it is another worker; None when it is this one.
        Raises 503 while partitions are not assigned (starting or rebalancing)."""
        try:
            owner = str(app.router.key_store(inbox.name, keys.user_key(user_id))).rstrip("/")
        except Exception as exc:
            raise web.HTTPServiceUnavailable(text="worker is not ready; retry") from exc
        return None if owner == str(app.conf.canonical_url).rstrip("/") else owner

    @app.page("/inbox")
    class InboxPage(View):  # type: ignore[misc]
        """GET /inbox?token=… — the user's inbox in a browser, live."""

        async def get(self, request: web.Request) -> web.Response:
            user_id = _user(request.query.get("token"))
            if user_id is None:
                return web.Response(
                    status=401,
                    text="Missing or invalid token: open /inbox?token=<in-app token>.\n",
                    headers={"Cache-Control": "no-store"},
                )
            owner = _owner_url(user_id)
            if owner is not None:
                raise web.HTTPTemporaryRedirect(owner + request.path_qs)
            return web.Response(
                text=_asset("inbox.html"), content_type="text/html", headers=_PAGE_HEADERS
            )

    @app.page("/inbox/inbox.js")
    class InboxScript(View):  # type: ignore[misc]
        async def get(self, request: web.Request) -> web.Response:
            return web.Response(
                text=_asset("inbox.js"), content_type="text/javascript", headers=_PAGE_HEADERS
            )

    @app.page("/inbox/inbox.css")
    class InboxStyle(View):  # type: ignore[misc]
        async def get(self, request: web.Request) -> web.Response:
            return web.Response(
                text=_asset("inbox.css"), content_type="text/css", headers=_PAGE_HEADERS
            )

    @app.page("/inapp/inbox")
    class InboxItems(View):  # type: ignore[misc]
        """GET /inapp/inbox — the user's inbox (oldest first) with seen/read flags, for clients
        that pull when they open. Same token as /inapp/stream (Bearer header or ?token=)."""

        async def get(self, request: web.Request) -> web.Response:
            user_id = _user(token_from(request))
            if user_id is None:
                return json_error(401, "missing or invalid token")
            owner = _owner_url(user_id)
            if owner is not None:
                raise web.HTTPTemporaryRedirect(owner + request.path_qs)
            items = inbox.get(keys.user_key(user_id)) or []
            return web.json_response(
                {
                    "user_id": user_id,
                    "unread": sum(not item.read for item in items),
                    "items": [item.model_dump(mode="json") for item in items],
                },
                headers={"Cache-Control": "no-store"},
            )
