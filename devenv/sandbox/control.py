"""``/_sandbox/*``: the HTTP face of the send log and the fault table.

Lets out-of-process users (the demo, benchmarks, a shell with curl) inspect and
steer a sandbox started with ``python -m devenv.sandbox``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from devenv.sandbox.faults import FaultRule
from devenv.sandbox.record import SendRecord
from devenv.sandbox.state import SandboxState

# Settings that can be changed at run time, over HTTP or as Sandbox attributes.
CONFIG_KEYS = ("sendgrid_event_webhook_url", "webhook_secret")


def config(state: SandboxState) -> dict[str, str | None]:
    return {key: getattr(state, key) for key in CONFIG_KEYS}


def brief(record: SendRecord) -> dict[str, Any]:
    """A send without its payload and headers (``GET /_sandbox/sends?view=brief``)."""
    return {
        "provider": record.provider,
        "target": record.target,
        "message_id": record.message_id,
        "received_at": record.received_at,
        "delivery_id": record.delivery_id,
    }


def setup(app: web.Application, state: SandboxState) -> None:
    async def get_sends(request: web.Request) -> web.Response:
        records = state.log.sends(
            provider=request.query.get("provider"), target=request.query.get("target")
        )
        view = request.query.get("view", "full")
        if view == "brief":
            # Without payloads and headers: tens of thousands of sends stay a small answer.
            return web.json_response({"sends": [brief(r) for r in records]})
        if view != "full":
            return web.json_response({"error": "view: full or brief"}, status=400)
        return web.json_response({"sends": [r.to_json() for r in records]})

    async def count_sends(request: web.Request) -> web.Response:
        records = state.log.sends(
            provider=request.query.get("provider"), target=request.query.get("target")
        )
        return web.json_response({"count": len(records)})

    async def sends_per_second(request: web.Request) -> web.Response:
        counts = state.log.per_second(request.query.get("provider"))
        # JSON keys are strings: the second as an integer's decimal digits.
        return web.json_response({"per_second": {str(s): n for s, n in counts.items()}})

    async def count_requests(request: web.Request) -> web.Response:
        # Requests received (accepted or not) by providers that batch: SendGrid only.
        return web.json_response({"count": state.log.requests(request.query.get("provider"))})

    async def delete_sends(request: web.Request) -> web.Response:
        state.log.clear()
        return web.Response(status=204)

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response({"faults": [r.to_json() for r in state.faults.rules()]})

    async def post_faults(request: web.Request) -> web.Response:
        try:
            data = await request.json()
            # One rule or a list of rules, so a scenario can be set in one call.
            items = data if isinstance(data, list) else [data]
            rules = [FaultRule.from_json(item) for item in items]
            for rule in rules:
                state.faults.add(rule)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"faults": [r.to_json() for r in rules]}, status=201)

    async def delete_faults(request: web.Request) -> web.Response:
        state.faults.clear(request.query.get("provider"))
        return web.Response(status=204)

    async def get_load(request: web.Request) -> web.Response:
        return web.json_response(state.load.snapshot())

    async def delete_load(request: web.Request) -> web.Response:
        state.load.reset()
        return web.Response(status=204)

    async def get_config(request: web.Request) -> web.Response:
        return web.json_response(config(state))

    async def post_config(request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(data, dict) or set(data) - set(CONFIG_KEYS):
            return web.json_response({"error": f"known keys: {list(CONFIG_KEYS)}"}, status=400)
        if not all(v is None or isinstance(v, str) for v in data.values()):
            return web.json_response({"error": "values must be strings or null"}, status=400)
        for key, value in data.items():
            setattr(state, key, value)
        return web.json_response(config(state))

    app.router.add_get("/_sandbox/config", get_config)
    app.router.add_post("/_sandbox/config", post_config)
    app.router.add_get("/_sandbox/sends", get_sends)
    app.router.add_get("/_sandbox/sends/count", count_sends)
    app.router.add_get("/_sandbox/sends/per-second", sends_per_second)
    app.router.add_delete("/_sandbox/sends", delete_sends)
    app.router.add_get("/_sandbox/requests/count", count_requests)
    app.router.add_get("/_sandbox/load", get_load)
    app.router.add_delete("/_sandbox/load", delete_load)
    app.router.add_get("/_sandbox/faults", get_faults)
    app.router.add_post("/_sandbox/faults", post_faults)
    app.router.add_delete("/_sandbox/faults", delete_faults)
