"""FCM HTTP v1 through firebase-admin's async path (``send_each_async``, httpx).

Retries: the SDK's own retry (4x on 500/503 with backoff, honouring Retry-After) is turned
off here -- one attempt per send -- so a send returns well within ``send_timeout_s`` and
the pipeline's retry (with the ``retry_after_s`` we report) owns the policy.

Token refresh: the SDK's httpx auth flow refreshes OAuth tokens synchronously, which would
block the event loop (and it refreshes and resends on every 401), and builds a google-auth
request (a ``requests.Session``) for every send; the sender refreshes in a thread before the
token goes stale, and after a 401 before the next send, and its own flow (``_token_flow``)
only puts the token on each request.

Concurrency: at most ``fcm_max_connections`` sends in flight (``GuardedSender``'s
``max_in_flight``); the rest wait for a slot off their send timeout's clock, so nothing
queues inside the SDK's httpx client. Beneath that client (its auth flow and retry
transport unchanged, ``clients.fcm_pool``) ``fcm_transport`` chooses what carries the
requests:
- ``aiohttp`` (the default; ``clients.aiohttp_transport``): one aiohttp connector of
  ``fcm_max_connections`` connections, all kept alive, HTTP/1.1 (which FCM's v1 API also
  serves). It costs the least CPU per send: the SDK path reached 0.28-0.32 of the lean
  client's rate, against 0.20-0.23 through httpcore (benchmarks/RESULTS.md).
- ``httpcore`` (httpx's own, as the SDK builds it, ``http2=True``): against Google each
  pool multiplexes its sends on one HTTP/2 connection; over plain http (the sandbox) it is
  HTTP/1.1, a connection per send in flight. The connections are pools of
  ``fcm_pool_size`` (``clients.PooledTransport``, all kept alive): httpcore scans every
  connection of a pool on each request and response (encode/httpcore#1035), so small pools
  cost far less per send than one big one.

The client skips its cookie jar for responses without ``Set-Cookie``
(``clients.CookielessResponses``); FCM sets none.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any, Literal

from firebase_admin import exceptions as fb
from firebase_admin import messaging
from pydantic import Field

from schemas.common import Channel, Lane
from schemas.notifications import Delivery
from sinks.providers.base import (
    GuardedSender,
    SendResult,
    parse_retry_after,
    permanent,
    sent,
    transient,
    ttl_seconds,
)
from sinks.providers.clients import GOOGLE_FCM_URL, HttpTransport
from sinks.providers.config import SenderSettings
from sinks.providers.spec import ProviderSpec

PROVIDER = "fcm"
URGENT_LANES = frozenset({Lane.CRITICAL, Lane.HIGH})


class FcmSettings(SenderSettings):
    fcm_credentials_file: Path | None = Field(
        default=None, description="Service-account JSON for FCM; unset = FCM not configured."
    )
    fcm_url: str = Field(
        default=GOOGLE_FCM_URL, description="FCM API base URL (override only for the sandbox)."
    )
    fcm_address_kind: Literal["token", "fid"] = Field(
        default="token",
        description=(
            "What push target addresses for FCM are: registration tokens ('token', deprecated "
            "in firebase-admin 7.7 but what apps register today) or installation ids ('fid')."
        ),
    )
    fcm_max_connections: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description=(
            "Most FCM sends in flight per worker (HTTP/1.1: as many connections; HTTP/2: "
            "streams); more wait for a slot, off the send timeout."
        ),
    )
    fcm_transport: HttpTransport = Field(
        default="aiohttp",
        description="What carries firebase-admin's requests beneath its httpx client: "
        "aiohttp (HTTP/1.1, the least CPU per send) or httpcore (httpx's own, HTTP/2 to "
        "FCM, in pools of fcm_pool_size).",
    )
    fcm_pool_size: int = Field(
        default=4,
        ge=1,
        le=10_000,
        description="With fcm_transport=httpcore, connections per httpx pool: the sends in "
        "flight are spread over ceil(fcm_max_connections / fcm_pool_size) pools, each an "
        "HTTP/2 connection to FCM.",
    )
    pace_fcm_per_s: float = Field(
        default=10_000.0,
        gt=0,
        description=(
            "FCM sends/s of the whole deployment (the quota, 600k/min, is per project); each "
            "worker paces its share (sinks/pacers.py, CLARION_PACE_SCOPE)."
        ),
    )


def _retry_after(exc: fb.FirebaseError) -> float | None:
    response = exc.http_response
    headers = getattr(response, "headers", None)
    return parse_retry_after(headers.get("Retry-After")) if headers is not None else None


def classify_fcm_error(exc: BaseException) -> SendResult:
    """Map a firebase-admin exception to a result (pure: no I/O)."""
    if not isinstance(exc, fb.FirebaseError):
        return transient(f"error:{type(exc).__name__}", str(exc))
    detail = str(exc)
    # FCM-specific codes first: they are subclasses of the generic platform errors.
    if isinstance(exc, messaging.UnregisteredError):
        return permanent("fcm:UNREGISTERED", detail, remove_target=True)
    if isinstance(exc, messaging.SenderIdMismatchError):
        return permanent("fcm:SENDER_ID_MISMATCH", detail, remove_target=True)
    if isinstance(exc, messaging.QuotaExceededError):
        return transient("fcm:QUOTA_EXCEEDED", detail, _retry_after(exc))
    if isinstance(exc, messaging.ThirdPartyAuthError):
        # The APNs/web-push credential uploaded to Firebase is wrong: an operator problem.
        return transient("fcm:THIRD_PARTY_AUTH_ERROR (credential)", detail)
    if isinstance(exc, fb.InvalidArgumentError):
        lowered = detail.lower()
        if "too big" in lowered or "too large" in lowered:
            return permanent("payload_too_large", detail)
        return permanent("fcm:INVALID_ARGUMENT", detail)
    if isinstance(exc, fb.UnauthenticatedError):
        return transient("fcm:UNAUTHENTICATED (credential)", detail)
    if isinstance(exc, fb.PermissionDeniedError):
        # e.g. the FCM API is not enabled for the project: configuration, not the target.
        return transient("fcm:PERMISSION_DENIED (credential)", detail)
    if isinstance(exc, fb.NotFoundError):
        # Without UNREGISTERED this is not a dead token (wrong project?): keep the target.
        return permanent("fcm:NOT_FOUND", detail)
    if isinstance(exc, fb.DeadlineExceededError):
        return transient("timeout", detail)
    return transient(f"fcm:{exc.code}", detail, _retry_after(exc))


def build_message(delivery: Delivery, address_kind: str = "token") -> messaging.Message:
    data = {
        **delivery.data,
        "clarion_delivery_id": delivery.delivery_id,
        "clarion_notification_id": delivery.notification_id,
    }
    if delivery.url:
        data["url"] = delivery.url
    android = messaging.AndroidConfig(
        priority="high" if delivery.lane in URGENT_LANES else "normal",
        ttl=ttl_seconds(delivery),
    )
    notification = messaging.Notification(
        title=delivery.title, body=delivery.body, image=delivery.image_url
    )
    target = {address_kind: delivery.target.address}
    with warnings.catch_warnings():
        # Message.token is deprecated in favour of fid (7.7), but registration tokens are
        # what apps hand out today; the choice is a setting (fcm_address_kind).
        warnings.simplefilter("ignore", DeprecationWarning)
        return messaging.Message(data=data, notification=notification, android=android, **target)


def _token_flow(credential: Any) -> Any:
    """The SDK's auth flow (``GoogleAuthCredentialFlow``: the credential's headers on each
    request) without what it costs per request here: it builds a google-auth ``Request``,
    and with it a ``requests.Session``, for every request (a sixth of an FCM send's CPU),
    and on a 401 it refreshes synchronously, blocking the loop, and resends. The sender
    refreshes in a thread before the token goes stale and after a 401 (``_ensure_token``),
    so the flow only applies the headers; the one google-auth request it keeps is used only
    if the token expired between that check and the send."""
    import httpx
    from google.auth.transport.requests import Request

    class TokenFlow(httpx.Auth):
        def __init__(self) -> None:
            self._auth_request = Request()

        def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
            credential.before_request(
                self._auth_request, request.method, str(request.url), request.headers
            )
            yield request

    return TokenFlow()


def single_attempt_retry() -> Any:
    """One attempt per send (the pipeline retries). The SDK's retry transport deep-copies
    its policy for every request; this one copies its few plain fields instead."""
    from firebase_admin._retry import HttpxRetry

    class SingleAttempt(HttpxRetry):  # type: ignore[misc]
        def copy(self) -> HttpxRetry:
            fresh = copy.copy(self)
            fresh.history = []
            return fresh

    return SingleAttempt(max_retries=0, status_forcelist=None)


class FcmSender(GuardedSender):
    provider = PROVIDER

    def __init__(
        self,
        credentials: dict[str, Any] | Path,
        *,
        base_url: str = GOOGLE_FCM_URL,
        timeout_s: float = 10.0,
        address_kind: str = "token",
        max_connections: int = 100,
        pool_size: int = 4,
        transport: HttpTransport = "aiohttp",
    ) -> None:
        import firebase_admin

        from sinks.providers.clients import (
            fcm_app,
            fcm_pool,
            http_transport,
            skip_cookieless_responses,
        )

        super().__init__(timeout_s, max_in_flight=max_connections)
        self.address_kind = address_kind
        self.app: firebase_admin.App = fcm_app(
            credentials,
            base_url=base_url,
            name=f"clarion-fcm-{uuid.uuid4().hex[:8]}",  # several senders may share a process
            timeout_s=timeout_s,
            async_retry=single_attempt_retry(),
        )
        fcm_pool(self.app, http_transport(transport, max_connections, pool_size))
        self._service = messaging._get_messaging_service(self.app)
        skip_cookieless_responses(self._service._async_client.async_client)
        self._credential = self.app.credential.get_credential()
        # The SDK's auth flow answers a 401 by refreshing synchronously (blocking the loop)
        # and resending; here a 401 is a result, and the refresh happens in a thread.
        self._service._async_client.async_client.auth = _token_flow(self._credential)
        self._refresh_lock = asyncio.Lock()
        self._force_refresh = False

    async def _ensure_token(self) -> None:
        from google.auth.credentials import TokenState
        from google.auth.transport.requests import Request

        async with self._refresh_lock:
            if self._force_refresh or self._credential.token_state is not TokenState.FRESH:
                await asyncio.to_thread(self._credential.refresh, Request())
                self._force_refresh = False

    async def _send(self, delivery: Delivery) -> SendResult:
        if not delivery.target.address:
            return permanent("fcm:INVALID_ARGUMENT", "empty registration token")
        message = build_message(delivery, self.address_kind)
        try:
            await self._ensure_token()
        except Exception as exc:  # google.auth.exceptions.* and requests errors
            return transient(f"fcm:token_refresh_failed:{type(exc).__name__}", str(exc))
        try:
            batch = await messaging.send_each_async([message], app=self.app)
        except fb.FirebaseError as exc:  # UnknownError: something outside the HTTP exchange
            return classify_fcm_error(exc)
        response = batch.responses[0]
        if response.success:
            return sent(response.message_id)
        result = classify_fcm_error(response.exception)
        if isinstance(response.exception, fb.UnauthenticatedError):
            self._force_refresh = True  # our token was refused: get a new one first
        return result

    async def aclose(self) -> None:
        import firebase_admin

        await self._service._async_client.aclose()  # and with it the PooledTransport
        with contextlib.suppress(ValueError):  # already deleted
            firebase_admin.delete_app(self.app)


def _build(cfg: FcmSettings) -> FcmSender:
    assert cfg.fcm_credentials_file is not None  # `configured` says so
    return FcmSender(
        cfg.fcm_credentials_file,
        base_url=cfg.fcm_url,
        timeout_s=cfg.send_timeout_s,
        address_kind=cfg.fcm_address_kind,
        max_connections=cfg.fcm_max_connections,
        pool_size=cfg.fcm_pool_size,
        transport=cfg.fcm_transport,
    )


SPEC = ProviderSpec(
    name=PROVIDER,
    channel=Channel.PUSH,
    settings=FcmSettings,
    configured=lambda cfg: cfg.fcm_credentials_file is not None,
    pace_per_s=lambda cfg: cfg.pace_fcm_per_s,
    build=_build,
    picks=lambda delivery: delivery.target.platform == PROVIDER,
)
