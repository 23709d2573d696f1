"""SMS through Twilio Messages with the SDK's async client (aiohttp).

``TwilioRestException`` carries no response headers, so the HTTP client subclass below
keeps the last response's ``Retry-After`` in a context variable: it is set and read in the
same task, so concurrent sends cannot see each other's value.

SMS has no title: the text is "title: body" plus the URL. The status callback URL gets
``?delivery_id=<id>`` so delivery receipts map back to the Clarion delivery.

Concurrency: the SDK's aiohttp session gets a connector of ``twilio_max_connections``
connections (aiohttp's default is 100), and the sender lets at most that many sends be in
flight; the rest wait for a slot, off their send timeout's clock, not in aiohttp's queue
for a connection. The async client against the synchronous one on as many threads, SDK
alone against the sandbox (benchmarks/RESULTS.md): the async one sent more per second at
less CPU, so it stays.
"""

from __future__ import annotations

import contextvars
from typing import Any, Self
from urllib.parse import urlencode

import aiohttp
from pydantic import Field, SecretStr, model_validator
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response

from schemas.common import Channel
from schemas.notifications import Delivery
from sinks.providers.base import (
    GuardedSender,
    SendResult,
    parse_retry_after,
    permanent,
    sent,
    transient,
)
from sinks.providers.config import SenderSettings
from sinks.providers.spec import ProviderSpec

PROVIDER = "twilio"
OPT_OUT = 21610  # recipient replied STOP: a legal opt-out
REMOVE_TARGET = frozenset({21211, 21614, 30005, 30006})  # invalid / not mobile / unknown / landline
TOO_LONG = 21617  # body over 1600 characters
TRANSIENT_CODES = frozenset({20429, 30003, 30001, 21611})  # rate / unreachable / queue full
CREDENTIAL_CODES = frozenset({20003})


class TwilioSettings(SenderSettings):
    twilio_account_sid: str | None = Field(
        default=None, description="Twilio account SID; unset = SMS not configured."
    )
    twilio_auth_token: SecretStr | None = Field(default=None, description="Twilio auth token.")
    twilio_url: str = Field(default="https://api.twilio.com", description="Twilio API base URL.")
    sms_from: str | None = Field(default=None, description="Sending number (E.164).")
    twilio_messaging_service_sid: str | None = Field(
        default=None, description="Messaging service to send from (instead of sms_from)."
    )
    twilio_status_callback_url: str | None = Field(
        default=None,
        description="Status callback URL; '?delivery_id=<id>' is appended for each message.",
    )
    twilio_max_connections: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description=(
            "Connections of the Twilio HTTP client, and the most SMS sends in flight per "
            "worker: more wait for a free one, off the send timeout."
        ),
    )
    pace_twilio_per_s: float = Field(
        default=100.0,
        gt=0,
        description=(
            "Twilio MPS of the sender (long code ≈ 1, short 100) for the whole deployment; "
            "each worker paces its share (sinks/pacers.py, CLARION_PACE_SCOPE)."
        ),
    )

    @property
    def twilio_configured(self) -> bool:
        return self.twilio_account_sid is not None

    # Named apart from the other providers' validators: ProviderSettings inherits them all.
    @model_validator(mode="after")
    def _twilio_complete(self) -> Self:
        if self.twilio_configured:
            if self.twilio_auth_token is None:
                raise ValueError("twilio_account_sid is set but twilio_auth_token is not")
            if not (self.sms_from or self.twilio_messaging_service_sid):
                raise ValueError("Twilio needs sms_from or twilio_messaging_service_sid")
        return self


_retry_after: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "twilio_retry_after", default=None
)


def classify_twilio(
    code: int | None, status: int, message: str | None = None, retry_after_s: float | None = None
) -> SendResult:
    """Map a Twilio error (code, HTTP status) to a result (pure: no I/O)."""
    label = f"twilio:{code}" if code else f"http_{status}"
    if code == OPT_OUT:
        return permanent(label, message, opt_out=True)
    if code in REMOVE_TARGET:
        return permanent(label, message, remove_target=True)
    if code == TOO_LONG or status == 413:
        return permanent("payload_too_large", message)
    if code in CREDENTIAL_CODES or status in (401, 403):
        return transient(f"{label} (credential)", message)
    if code in TRANSIENT_CODES or status in (408, 429) or status >= 500:
        return transient(label, message, retry_after_s)
    return permanent(label, message)


def sms_text(delivery: Delivery) -> str:
    text = f"{delivery.title}: {delivery.body}" if delivery.title else delivery.body
    return f"{text} {delivery.url}" if delivery.url else text


def status_callback(base: str | None, delivery_id: str) -> str | None:
    if not base:
        return None
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}{urlencode({'delivery_id': delivery_id})}"


class _HeaderKeepingClient(AsyncTwilioHttpClient):
    """Twilio's aiohttp client, keeping each answer's Retry-After, and handing aiohttp the
    form body already encoded: given the fields, aiohttp builds a FormData, and with it a
    multipart writer with a random boundary, before it sees the form is urlencoded (a
    fifth of a send's CPU). The bytes are what that FormData would produce
    (``urlencode(fields, doseq=True)``) under the Content-Type the SDK already set."""

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the SDK's signature)
        allow_redirects: bool = False,
    ) -> Response:
        body: Any = data
        if isinstance(data, dict):
            body = urlencode(list(data.items()), doseq=True).encode()
        response: Response = await super().request(
            method, url, params, body, headers, auth, timeout, allow_redirects
        )
        retry_after = (response.headers or {}).get("Retry-After")
        _retry_after.set(retry_after)
        return response


class TwilioSender(GuardedSender):
    provider = PROVIDER

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sms_from: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback_url: str | None = None,
        base_url: str = "https://api.twilio.com",
        timeout_s: float = 10.0,
        max_connections: int = 100,
    ) -> None:
        # No more sends in flight than connections: none waits in aiohttp's connector.
        super().__init__(timeout_s, max_in_flight=max_connections)
        self.max_connections = max_connections
        if not (sms_from or messaging_service_sid):
            raise ValueError("Twilio needs sms_from or messaging_service_sid")
        self._credentials = (account_sid, auth_token)
        self.sms_from = sms_from
        self.messaging_service_sid = messaging_service_sid
        self.status_callback_url = status_callback_url
        self.base_url = base_url
        self._http: _HeaderKeepingClient | None = None
        self._client: Any = None

    def _get_client(self) -> Any:
        # aiohttp's ClientSession needs the running loop: build on first send.
        if self._client is None:
            from sinks.providers.clients import twilio_client

            # Without a session of its own (pool_connections=False) ...
            self._http = _HeaderKeepingClient(pool_connections=False, timeout=self.timeout_s)
            # ... it gets ours: the SDK's would have aiohttp's default connector.
            self._http.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections)
            )
            self._client = twilio_client(self.base_url, *self._credentials, http_client=self._http)
        return self._client

    async def _send(self, delivery: Delivery) -> SendResult:
        from twilio.base import values

        client = self._get_client()
        _retry_after.set(None)
        try:
            message = await client.messages.create_async(
                to=delivery.target.address,
                body=sms_text(delivery),
                from_=self.sms_from or values.unset,
                messaging_service_sid=self.messaging_service_sid or values.unset,
                status_callback=status_callback(self.status_callback_url, delivery.delivery_id)
                or values.unset,
            )
        except (TwilioRestException, TwilioServiceException) as exc:
            detail = exc.msg if isinstance(exc, TwilioRestException) else exc.title
            return classify_twilio(
                exc.code, int(exc.status), detail, parse_retry_after(_retry_after.get())
            )
        except TimeoutError:
            return transient("timeout", "twilio: request timed out")
        except aiohttp.ClientError as exc:
            return transient("connection_error", f"{type(exc).__name__}: {exc}")
        return sent(message.sid)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._http = None
        self._client = None


def _build(cfg: TwilioSettings) -> TwilioSender:
    assert cfg.twilio_account_sid is not None and cfg.twilio_auth_token is not None
    return TwilioSender(
        account_sid=cfg.twilio_account_sid,
        auth_token=cfg.twilio_auth_token.get_secret_value(),
        sms_from=cfg.sms_from,
        messaging_service_sid=cfg.twilio_messaging_service_sid,
        status_callback_url=cfg.twilio_status_callback_url,
        base_url=cfg.twilio_url,
        timeout_s=cfg.send_timeout_s,
        max_connections=cfg.twilio_max_connections,
    )


SPEC = ProviderSpec(
    name=PROVIDER,
    channel=Channel.SMS,
    settings=TwilioSettings,
    configured=lambda cfg: cfg.twilio_account_sid is not None and cfg.twilio_auth_token is not None,
    pace_per_s=lambda cfg: cfg.pace_twilio_per_s,
    build=_build,
)
