"""What the operator table views show: how each table's value is rendered as JSON (the keys
a view looks up are built by tables/keys.py). Contact points never leave unmasked."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from logic.masking import mask_address
from schemas.digests import DigestWindow

Renderer = Callable[[Any], Any]

# Field names that hold a secret or an address whatever table they turn up in.
_SENSITIVE = ("token", "secret", "password", "email", "phone", "address", "url")
MASKED = "***"


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_address(value) if value else value
    if value is None or isinstance(value, bool | int | float):
        return value
    return MASKED  # a structure under a sensitive name: show nothing of it


def mask_contact_points(contacts: Mapping[str, Any]) -> dict[str, Any]:
    """A ContactPoints row with every device token, email, phone and webhook URL masked.
    Unknown fields are masked too when their name looks sensitive, and dropped when they are
    structures we cannot vouch for: a field added later must not leak by default."""
    out: dict[str, Any] = {}
    for name, value in contacts.items():
        if name == "devices" and isinstance(value, list | tuple):
            out[name] = [
                {
                    "platform": d.get("platform"),
                    "token": _mask_value(d.get("token")),
                }
                if isinstance(d, Mapping)
                else MASKED
                for d in value
            ]
        elif name in ("user_id", "updated_at"):
            out[name] = value
        elif any(word in name.lower() for word in _SENSITIVE):
            out[name] = _mask_value(value)
        elif value is None or isinstance(value, bool | int | float):
            out[name] = value
        else:
            out[name] = MASKED
    return out


def render_confirmed(value: Any) -> Any:
    return {"confirmed_at": value}


def render_followed(value: Any) -> Any:
    return {"followed_at": value}


def render_struct(value: Any) -> Any:
    """A typed row (a msgspec Struct, tables/rows.py) as an object with its field names, also
    the rows stored as JSON lists (`[tokens, updated_at]` is shown as
    {"tokens": …, "updated_at": …})."""
    if isinstance(value, msgspec.Struct):
        return msgspec.structs.asdict(value)
    return value


def window_summary(window: DigestWindow, partition: int) -> dict[str, Any]:
    """One line of the open-windows list (the window's full row is in the digests view)."""
    return {
        "recipient_id": window.recipient_id,
        "group_key": window.group_key,
        "lane": window.lane.value,
        "partition": partition,
        "window_start": window.window_start,
        "window_end": window.window_end,
        "deadline": window.deadline,
        "count": window.count,
        "actors": len(window.actor_ids),
    }


def clamp_limit(raw: str | None, default: int = 100, maximum: int = 1000) -> int:
    """The `limit` query parameter: a positive int, at most `maximum`."""
    if raw is None or raw == "":
        return default
    value = int(raw)  # ValueError for the view to report
    if value < 1:
        raise ValueError("limit must be at least 1")
    return min(value, maximum)
