"""Clarion-Signature: sign and verify (good, tampered, stale, rotated)."""

from sinks.providers.webhook import sign, verify, webhook_body
from tests.sandbox.deliveries import delivery

SECRET = "s" * 32
BODY = b'{"delivery_id":"d1"}'
TS = 1_900_000_000


def test_good_signature_verifies() -> None:
    header = sign(SECRET, TS, BODY)
    assert header.startswith(f"t={TS},v1=") and len(header.split("v1=")[1]) == 64
    assert verify(SECRET, header, BODY, now=TS + 10)


def test_tampered_body_wrong_secret_or_timestamp_fail() -> None:
    header = sign(SECRET, TS, BODY)
    assert not verify(SECRET, header, BODY.replace(b"d1", b"d2"), now=TS)
    assert not verify("x" * 32, header, BODY, now=TS)
    moved = header.replace(f"t={TS}", f"t={TS + 1}")
    assert not verify(SECRET, moved, BODY, now=TS)


def test_stale_and_future_timestamps_fail() -> None:
    header = sign(SECRET, TS, BODY)
    assert verify(SECRET, header, BODY, now=TS + 300)
    assert not verify(SECRET, header, BODY, now=TS + 301)
    assert not verify(SECRET, header, BODY, now=TS - 301)
    assert verify(SECRET, header, BODY, tolerance_s=3600, now=TS + 3000)


def test_malformed_headers_fail() -> None:
    for header in ("", "garbage", f"t={TS}", "v1=abc", f"t=soon,v1={'0' * 64}"):
        assert not verify(SECRET, header, BODY, now=TS)


def test_any_of_several_signatures_may_match_during_rotation() -> None:
    old = sign("o" * 32, TS, BODY).split(",")[1]
    new = sign(SECRET, TS, BODY).split(",")[1]
    assert verify(SECRET, f"t={TS},{old},{new}", BODY, now=TS)


def test_body_is_stable_compact_json_without_target() -> None:
    d = delivery("webhook", "https://consumer.example/hook", body="no-spaces")
    body = webhook_body(d)
    assert body == webhook_body(d)
    assert b": " not in body and b", " not in body
    assert b"consumer.example" not in body  # the target URL is not part of the payload
    assert b'"delivery_id":"dlv-1"' in body
