"""Deterministic ids: a replayed or redelivered event maps to the same notification."""

from __future__ import annotations

import hashlib
import uuid

from schemas.common import Channel

_NAMESPACE = uuid.UUID("6f1c6f0e-6a55-4c8e-9a7b-3f0c1d2e4b5a")


def notification_id(event_id: str, recipient_id: str) -> str:
    return uuid.uuid5(_NAMESPACE, f"{event_id}\x1f{recipient_id}").hex


def delivery_id(notification_id: str, channel: Channel, address: str) -> str:
    # The address is hashed so delivery ids can be logged without leaking contact points.
    digest = hashlib.blake2s(address.encode(), digest_size=6).hexdigest()
    return f"{notification_id}:{channel.value}:{digest}"
