"""Signed in-app client tokens (HS256 JWT) that name exactly one user."""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt

_AUDIENCE = "clarion-inapp"
_ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or signed with another secret."""


def issue_token(user_id: str, secret: str, ttl: timedelta, now: datetime) -> str:
    claims = {"sub": user_id, "aud": _AUDIENCE, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def verify_token(token: str, secret: str) -> str:
    """Return the user id the token names."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            audience=_AUDIENCE,
            options={"require": ["sub", "exp", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    user_id = claims["sub"]
    if not isinstance(user_id, str) or not user_id:
        raise InvalidToken("token names no user")
    return user_id
