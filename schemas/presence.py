"""What gateways tell the workers (presence) and what workers send back (in-app items)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from schemas.notifications import InboxItem


class PresenceKind(StrEnum):
    ONLINE = "online"  # a client of the user connected to the gateway
    OFFLINE = "offline"  # the user's last connection to the gateway closed
    LEASE = "lease"  # the gateway is alive until `expires_at` (sent to every partition)


class PresenceEvent(BaseModel):
    """One record of the `presence` topic. ONLINE/OFFLINE are keyed "<user>\\x1f<gateway>"
    and go to the user's partition; LEASE goes to every partition."""

    model_config = ConfigDict(frozen=True)

    kind: PresenceKind
    gateway_id: str
    # One per gateway process start: a restarted gateway's old connections are not its own.
    epoch: str
    at: datetime
    user_id: str | None = None
    expires_at: datetime | None = None  # LEASE only; a past time revokes the lease


class GatewayPush(BaseModel):
    """One record of `gateway.deliveries`: items for one user's connections on a gateway.
    `sync` = the user's inbox as the worker had it when it saw the user come online."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    items: list[InboxItem]
    sync: bool = False
