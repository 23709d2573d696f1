"""FCM HTTP v1 ``messages:send`` plus the OAuth2 token endpoint it needs.

The service account JSON's ``token_uri`` points at ``TOKEN_PATH`` here, so
google-auth performs its real JWT-bearer exchange against the sandbox; sends
must then carry one of the access tokens this sandbox issued.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any

from aiohttp import web

from devenv.sandbox.faults import FaultRule
from devenv.sandbox.state import SandboxState

PROVIDER = "fcm"
TOKEN_PATH = "/oauth2/token"
MAX_PAYLOAD_BYTES = 4096
# Registration tokens are URL-safe base64 with ':'; anything else is malformed.
TOKEN_FORMAT = re.compile(r"^[A-Za-z0-9_:\-.]+$")

# FCM error code -> (HTTP status, google.rpc status name).
ERRORS: dict[str, tuple[int, str]] = {
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT"),
    "UNREGISTERED": (404, "NOT_FOUND"),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED"),
    "UNAVAILABLE": (503, "UNAVAILABLE"),
    "INTERNAL": (500, "INTERNAL"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED"),
}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                503: "UNAVAILABLE"}  # fmt: skip


def google_error(
    status: int, message: str, fcm_code: str | None, headers: dict[str, str] | None = None
) -> web.Response:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if fcm_code is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}
        ]
    return web.json_response({"error": error}, status=status, headers=headers)


def render_error(rule: FaultRule) -> web.Response:
    code = rule.error or "INTERNAL"
    status = rule.status or ERRORS.get(code, (500, "INTERNAL"))[0]
    headers = {"Retry-After": str(int(rule.retry_after_s))} if rule.retry_after_s else None
    return google_error(status, f"sandbox injected {code}", code, headers)


# "fid" (Firebase installation ID) replaces "token" from firebase-admin 7.7 on;
# both name one app instance, so both are recorded as the bare value.
TARGET_KEYS = ("token", "fid", "topic", "condition")


def _target(message: dict[str, Any]) -> str | None:
    for key in TARGET_KEYS:
        value = message.get(key)
        if isinstance(value, str) and value:
            return value if key in ("token", "fid") else f"{key}:{value}"
    return None


def setup(app: web.Application, state: SandboxState) -> None:
    issued: set[str] = set()
    issued_lock = threading.Lock()  # handlers run on one loop, but be safe if that changes

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not form.get(
            "assertion"
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        # The JWT's signature is not checked: this tests the flow, not Google's auth.
        access_token = "ya29.sandbox-" + uuid.uuid4().hex
        with issued_lock:
            issued.add(access_token)
        return web.json_response(
            {"access_token": access_token, "expires_in": 3600, "token_type": "Bearer"}
        )

    async def send(request: web.Request) -> web.Response:
        project = request.match_info["project"]
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with issued_lock:
            known = bearer in issued
        if not known:
            return google_error(401, "Request had invalid authentication credentials.", None)
        try:
            body = await request.json()
        except ValueError:
            return google_error(400, "Invalid JSON payload received.", None)
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict):
            return google_error(400, "Missing message.", "INVALID_ARGUMENT")
        target = _target(message)
        if target is None:
            return google_error(400, "Recipient of the message is not set.", "INVALID_ARGUMENT")
        if target == message.get("token", message.get("fid")) and not TOKEN_FORMAT.match(target):
            return google_error(
                400, "The registration token is not a valid FCM registration token",
                "INVALID_ARGUMENT")  # fmt: skip
        content = {k: v for k, v in message.items() if k not in TARGET_KEYS}
        if len(json.dumps(content, separators=(",", ":")).encode()) > MAX_PAYLOAD_BYTES:
            return google_error(400, "Message is too big", "INVALID_ARGUMENT")
        fault = await state.apply_fault(PROVIDER, [target], render_error)
        if fault is not None:
            return fault
        if body.get("validate_only"):
            # Dry run: validated but not delivered, so not recorded.
            return web.json_response({"name": f"projects/{project}/messages/fake_message_id"})
        record = state.accept(PROVIDER, target, message, dict(request.headers))
        return web.json_response({"name": f"projects/{project}/messages/{record.message_id}"})

    app.router.add_post(TOKEN_PATH, token)
    app.router.add_post("/v1/projects/{project}/messages:send", send)
