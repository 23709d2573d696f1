"""Edits to a user's contact points and preferences that delivery outcomes call for."""

from __future__ import annotations

from collections.abc import Collection

from schemas.common import Channel
from schemas.users import ContactPoints, Preferences


def without_addresses(contacts: ContactPoints, dead: Collection[str]) -> ContactPoints:
    """The contact points minus every dead device token, address, number or endpoint."""
    return contacts.model_copy(
        update={
            "devices": tuple(d for d in contacts.devices if d.token not in dead),
            "email": None if contacts.email in dead else contacts.email,
            "phone": None if contacts.phone in dead else contacts.phone,
            "webhook_url": None if contacts.webhook_url in dead else contacts.webhook_url,
        }
    )


def with_channel_disabled(prefs: Preferences | None, user_id: str, channel: Channel) -> Preferences:
    """The preferences with `channel` off for every category (a STOP reply, a spam report)."""
    base = prefs or Preferences(user_id=user_id)
    return base.model_copy(update={"disabled_channels": base.disabled_channels | {channel}})
