"""The operator views' guard: `Authorization: Bearer <CLARION_ADMIN_TOKEN>`."""

from __future__ import annotations

import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class Denied:
    status: int
    reason: str


NOT_CONFIGURED = Denied(403, "CLARION_ADMIN_TOKEN is not set: the admin views are disabled")
MISSING = Denied(401, "missing admin token (Authorization: Bearer <CLARION_ADMIN_TOKEN>)")
WRONG = Denied(403, "wrong admin token")


def check_admin(authorization: str | None, expected: str | None) -> Denied | None:
    """None when the header carries the expected token. The comparison takes the same time
    whatever the mismatch, so the token cannot be guessed byte by byte from response times."""
    if not expected:
        return NOT_CONFIGURED
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return MISSING
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return WRONG
    return None
