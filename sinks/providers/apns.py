"""APNs over HTTP/2 through aioapns (token auth with a .p8 key).

Headers: ``apns-id`` is derived from the delivery id (the same delivery always carries the
same id, so APNs and logs can correlate retries); ``apns-collapse-id`` is the notification
id (an update of the same notification replaces the previous one on the device);
``apns-expiration`` follows ``expires_at`` and is omitted when there is none, so APNs
stores the notification for an offline device and delivers it later (its default) -- a
delivery without an expiry is one we want to arrive eventually.

aioapns has no request timeout and binds the running loop in its constructor: the client is
created on the first send, and every send is bounded by ``GuardedSender``'s timeout.
aioapns does not expose response headers, so no ``retry_after_s`` for APNs 429s.

Connections: Apple asks for several HTTP/2 connections for volume, each carrying many
concurrent streams. The client spreads its requests over up to ``apns_connections``
connections, opening the next one while the least busy is in use
(``clients._spreading_pool``), and the sender lets at most ``apns_connections`` x
``apns_streams_per_connection`` sends be in flight; the rest wait for a slot, off their
send timeout's clock, instead of polling aioapns' pool every 10 ms when all its streams
are taken. APNs advertises how many streams it allows per connection (the sandbox 100);
``apns_streams_per_connection`` should not exceed it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Self

from pydantic import Field, model_validator

from schemas.common import Channel, Lane
from schemas.notifications import Delivery
from sinks.providers.base import GuardedSender, SendResult, permanent, sent, transient, ttl_seconds
from sinks.providers.config import SenderSettings
from sinks.providers.spec import ProviderSpec

PROVIDER = "apns"
URGENT_LANES = frozenset({Lane.CRITICAL, Lane.HIGH})
# A fixed namespace, so apns-id = uuid5(namespace, delivery_id) is stable across processes.
APNS_ID_NAMESPACE = uuid.UUID("6b0c3f9e-6a53-4d5c-9a55-3c1a2f7f0d11")
COLLAPSE_ID_MAX_BYTES = 64

REMOVE_TARGET = frozenset({"Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic"})
CREDENTIAL = frozenset({"InvalidProviderToken", "ExpiredProviderToken", "MissingProviderToken"})


class ApnsSettings(SenderSettings):
    """aioapns, token auth."""

    apns_key_file: Path | None = Field(
        default=None, description="APNs auth key (.p8); unset = APNs not configured."
    )
    apns_key_id: str | None = Field(default=None, description="Key ID of the .p8 key.")
    apns_team_id: str | None = Field(default=None, description="Apple developer team ID.")
    apns_topic: str | None = Field(default=None, description="App bundle id (apns-topic).")
    apns_use_sandbox: bool = Field(
        default=False, description="Use Apple's development APNs host instead of production."
    )
    apns_url: str | None = Field(
        default=None, description="Override the APNs host, e.g. https://127.0.0.1:1234."
    )
    apns_ca_file: Path | None = Field(
        default=None, description="Extra CA (PEM) to trust for APNs, besides the system CAs."
    )
    apns_connections: int = Field(
        default=4,
        ge=1,
        le=100,
        description="HTTP/2 connections to APNs per worker; requests are spread over them.",
    )
    apns_streams_per_connection: int = Field(
        default=100,
        ge=1,
        le=1000,
        description=(
            "Concurrent streams per APNs connection; sends in flight are at most "
            "apns_connections x this, more wait for a slot, off the send timeout."
        ),
    )
    pace_apns_per_s: float = Field(
        default=5_000.0,
        gt=0,
        description=(
            "APNs sends/s of the whole deployment; each worker paces its share "
            "(sinks/pacers.py, CLARION_PACE_SCOPE)."
        ),
    )

    @property
    def apns_configured(self) -> bool:
        return self.apns_key_file is not None

    # Named apart from the other providers' validators: ProviderSettings inherits them all.
    @model_validator(mode="after")
    def _apns_complete(self) -> Self:
        if self.apns_configured:
            missing = [
                name
                for name in ("apns_key_id", "apns_team_id", "apns_topic")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"apns_key_file is set but {missing} are not")
        return self


def apns_id(delivery_id: str) -> str:
    return str(uuid.uuid5(APNS_ID_NAMESPACE, delivery_id))


def collapse_id(notification_id: str) -> str:
    """At most 64 bytes of UTF-8, never cutting a character in half."""
    return notification_id.encode()[:COLLAPSE_ID_MAX_BYTES].decode(errors="ignore")


def classify_apns(status: str | int, reason: str | None) -> SendResult:
    """Map an APNs answer (HTTP status, ``reason``) to a result (pure: no I/O)."""
    code = int(status)
    if code == 200:
        return sent()
    label = f"apns:{reason or code}"
    if reason in REMOVE_TARGET or code == 410:
        return permanent(label, reason, remove_target=True)
    if code == 413 or reason == "PayloadTooLarge":
        return permanent("payload_too_large", reason)
    if code == 403 or reason in CREDENTIAL:
        # Our provider token (key id / team id / .p8) is wrong: alert, don't drop the push.
        return transient(label, f"{reason} (credential)")
    if code == 429 or code >= 500:
        return transient(label, reason)
    return permanent(label, reason)


def build_payload(delivery: Delivery) -> dict[str, Any]:
    aps: dict[str, Any] = {
        "alert": {"title": delivery.title, "body": delivery.body},
        "sound": "default",
    }
    payload: dict[str, Any] = {"aps": aps, "clarion_delivery_id": delivery.delivery_id}
    if delivery.image_url:
        aps["mutable-content"] = 1  # lets the app's service extension fetch the image
        payload["image_url"] = delivery.image_url
    if delivery.url:
        payload["url"] = delivery.url
    return payload


async def _ignore_failure(request: Any, result: Any) -> None:
    return None


class ApnsSender(GuardedSender):
    provider = PROVIDER

    def __init__(
        self,
        *,
        key_file: Path,
        key_id: str,
        team_id: str,
        topic: str,
        use_sandbox: bool = False,
        apns_url: str | None = None,
        ca_file: Path | None = None,
        timeout_s: float = 10.0,
        connections: int = 4,
        streams_per_connection: int = 100,
    ) -> None:
        # What the connections carry at once: more would wait inside aioapns, polling.
        super().__init__(timeout_s, max_in_flight=connections * streams_per_connection)
        self._key = key_file.read_text()  # read now: a missing key fails at startup
        self._options: dict[str, Any] = {
            "key_id": key_id,
            "team_id": team_id,
            "topic": topic,
            "use_sandbox": use_sandbox,
            "apns_url": apns_url,
            "ca_file": ca_file,
            "max_connections": connections,
        }
        self._client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            from sinks.providers.clients import apns_client

            self._client = apns_client(key=self._key, **self._options)
            # Failures are results here; aioapns would otherwise log each one at ERROR.
            self._client.err_func = _ignore_failure
        return self._client

    async def _send(self, delivery: Delivery) -> SendResult:
        from aioapns import NotificationRequest, PushType
        from aioapns.exceptions import ConnectionError as APNsConnectionError
        from aioapns.exceptions import MaxAttemptsExceeded

        request = NotificationRequest(
            device_token=delivery.target.address,
            message=build_payload(delivery),
            notification_id=apns_id(delivery.delivery_id),
            time_to_live=ttl_seconds(delivery),
            priority=10 if delivery.lane in URGENT_LANES else 5,
            collapse_key=collapse_id(delivery.notification_id),
            push_type=PushType.ALERT,
        )
        try:
            result = await self._get_client().send_notification(request)
        except (MaxAttemptsExceeded, APNsConnectionError, ConnectionError, OSError) as exc:
            return transient("apns:connection", f"{type(exc).__name__}: {exc}")
        classified = classify_apns(result.status, result.description)
        return sent(result.notification_id) if classified.sent else classified

    async def aclose(self) -> None:
        if self._client is not None:
            self._client.pool.close()
            self._client = None


def _build(cfg: ApnsSettings) -> ApnsSender:
    # The settings validator guarantees the rest of the APNs fields.
    assert cfg.apns_key_file and cfg.apns_key_id and cfg.apns_team_id and cfg.apns_topic
    return ApnsSender(
        key_file=cfg.apns_key_file,
        key_id=cfg.apns_key_id,
        team_id=cfg.apns_team_id,
        topic=cfg.apns_topic,
        use_sandbox=cfg.apns_use_sandbox,
        apns_url=cfg.apns_url,
        ca_file=cfg.apns_ca_file,
        timeout_s=cfg.send_timeout_s,
        connections=cfg.apns_connections,
        streams_per_connection=cfg.apns_streams_per_connection,
    )


SPEC = ProviderSpec(
    name=PROVIDER,
    channel=Channel.PUSH,
    settings=ApnsSettings,
    configured=lambda cfg: cfg.apns_configured,
    pace_per_s=lambda cfg: cfg.pace_apns_per_s,
    build=_build,
    picks=lambda delivery: delivery.target.platform == PROVIDER,
)
