from datetime import UTC, datetime, timedelta

import jwt
import pytest

from logic.tokens import InvalidToken, issue_token, verify_token


def now() -> datetime:
    # Not a module constant: the suite may run for minutes before these tests do.
    return datetime.now(UTC)


def test_token_names_its_user() -> None:
    token = issue_token("alice", "s3cret-s3cret-s3cret-s3cret-s3cret", timedelta(minutes=5), now())
    assert verify_token(token, "s3cret-s3cret-s3cret-s3cret-s3cret") == "alice"


def test_token_signed_with_another_secret_is_refused() -> None:
    token = issue_token("alice", "s3cret-s3cret-s3cret-s3cret-s3cret", timedelta(minutes=5), now())
    with pytest.raises(InvalidToken):
        verify_token(token, "other-other-other-other-other-other")


def test_expired_token_is_refused() -> None:
    token = issue_token(
        "alice",
        "s3cret-s3cret-s3cret-s3cret-s3cret",
        timedelta(minutes=5),
        now() - timedelta(hours=1),
    )
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(token, "s3cret-s3cret-s3cret-s3cret-s3cret")


def test_tampered_subject_is_refused() -> None:
    token = issue_token("alice", "s3cret-s3cret-s3cret-s3cret-s3cret", timedelta(minutes=5), now())
    header, _payload, sig = token.split(".")
    forged = jwt.encode(
        {"sub": "bob", "aud": "clarion-inapp", "exp": now() + timedelta(hours=1)},
        "guess-guess-guess-guess-guess-guess",
        algorithm="HS256",
    ).split(".")[1]
    with pytest.raises(InvalidToken):
        verify_token(f"{header}.{forged}.{sig}", "s3cret-s3cret-s3cret-s3cret-s3cret")


def test_unsigned_token_is_refused() -> None:
    unsigned = jwt.encode(
        {"sub": "alice", "aud": "clarion-inapp", "exp": now() + timedelta(hours=1)},
        None,
        algorithm="none",
    )
    with pytest.raises(InvalidToken):
        verify_token(unsigned, "s3cret-s3cret-s3cret-s3cret-s3cret")
