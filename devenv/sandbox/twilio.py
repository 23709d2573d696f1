"""Twilio ``POST /2010-04-01/Accounts/{Sid}/Messages.json`` (form-encoded, 201 JSON)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiohttp import BasicAuth, web

from devenv.sandbox.faults import FaultRule
from devenv.sandbox.state import SandboxState

PROVIDER = "twilio"
MAX_BODY_CHARS = 1600
E164 = re.compile(r"^(whatsapp:)?\+[1-9]\d{1,14}$")

# HTTP status Twilio uses for each error code the project handles.
STATUS_FOR_CODE = {
    20003: 401,
    20429: 429,
    21211: 400,  # invalid 'To'
    21610: 400,  # recipient replied STOP
    21614: 400,  # 'To' is not a mobile number
    21617: 400,  # body over 1600 characters
    # Really delivery failures reported later via status callback; the sandbox
    # answers them synchronously so the client's handling can be exercised.
    30003: 400,
    30005: 400,
    30006: 400,
}
MESSAGES = {
    20003: "Authentication Error - invalid username",
    20429: "Too Many Requests",
    21211: "The 'To' number is not a valid phone number.",
    21604: "A 'From' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
}


def _error(
    code: int, status: int | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    status = status or STATUS_FOR_CODE.get(code, 400)
    body = {
        "code": code,
        "message": MESSAGES.get(code, "sandbox injected fault"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status, headers=headers)


def render_error(rule: FaultRule) -> web.Response:
    code = int(rule.error) if rule.error else 20500
    headers = {"Retry-After": str(int(rule.retry_after_s))} if rule.retry_after_s else None
    return _error(code, rule.status, headers)


def setup(app: web.Application, state: SandboxState) -> None:
    async def create_message(request: web.Request) -> web.Response:
        account_sid = request.match_info["sid"]
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            auth = None
        if auth is None or not auth.login:
            return _error(20003)
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
        to = fields.get("To", "")
        if not E164.match(to):
            return _error(21211)
        if not (fields.get("From") or fields.get("MessagingServiceSid")):
            return _error(21604, 400)  # "From" (or a messaging service) is required
        if len(fields.get("Body", "")) > MAX_BODY_CHARS:
            return _error(21617)
        fault = await state.apply_fault(PROVIDER, [to], render_error)
        if fault is not None:
            return fault
        record = state.accept(PROVIDER, to, fields, dict(request.headers))
        sid = "SM" + record.message_id  # 34 chars like a real message SID
        now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        body = {
            "sid": sid,
            "account_sid": account_sid,
            "to": to,
            "from": fields.get("From"),
            "messaging_service_sid": fields.get("MessagingServiceSid"),
            "body": fields.get("Body", ""),
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "price": None,
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        }
        return web.json_response(body, status=201)

    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create_message)
