"""How an in-app client proves who it is, for every HTTP endpoint that serves one (the
worker's views, the inbox page, the gateway): a signed token in `Authorization: Bearer`,
or in `?token=` because EventSource cannot set headers. No Faust import."""

from __future__ import annotations

from aiohttp import web

from logic.tokens import InvalidToken, verify_token


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def token_from(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth.removeprefix("Bearer ").strip() or None
    return request.query.get("token") or None


def user_from(request: web.Request, secret: str) -> str | web.Response:
    """The token's user id, or the 401 response to send."""
    token = token_from(request)
    if not token:
        return json_error(401, "missing token (Authorization: Bearer … or ?token=…)")
    try:
        return verify_token(token, secret)
    except InvalidToken as exc:
        return json_error(401, f"invalid token: {exc}")
