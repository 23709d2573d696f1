"""Sample users, their preferences and contact points, and a realistic event mix."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.catalog import CONTACTS, FOLLOWS, INGRESS_FOR_TYPE, PREFERENCES
from tables.keys import edge_key

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]

# Roughly what a social product emits: mostly likes, a trickle of critical events.
EVENT_MIX: list[tuple[str, float]] = [
    ("like", 0.45),
    ("comment", 0.12),
    ("follow", 0.10),
    ("mention", 0.05),
    ("message", 0.15),
    ("marketing", 0.06),
    ("payment", 0.03),
    ("security_alert", 0.02),
    ("live_started", 0.02),
]


# The demo shows every channel in its first seconds, not by luck: it sends these events first
# (showcase_events), to users whose device platform and preferences seed_profiles fixes.
# Webhooks come only from comment windows, which also push; a user out of push tokens holds
# the window up to the push refill (5 min), so the webhook user takes comments without push.
FCM_USER, APNS_USER, SMS_USER, WEBHOOK_USER = "bob", "carol", "dave", "erin"
SHOWCASE: list[tuple[str, str, str]] = [  # (event type, recipient, what it shows)
    ("message", "alice", "in-app at once (alice's feed below)"),
    ("payment", FCM_USER, "push via FCM, email via SendGrid"),
    ("payment", APNS_USER, "push via APNs, email via SendGrid"),
    ("security_alert", SMS_USER, "SMS via Twilio, then its escalation"),
    ("comment", WEBHOOK_USER, "a signed webhook when its comment window closes"),
]
_PLATFORM = {FCM_USER: "fcm", APNS_USER: "apns"}
_SHOWCASE_PREFS: dict[str, dict[str, Any]] = {WEBHOOK_USER: {"opt_out": {"comment": ["push"]}}}


def user_ids(n: int) -> list[str]:
    return [NAMES[i] if i < len(NAMES) else f"user-{i}" for i in range(n)]


def preferences_for(user_id: str, rng: random.Random) -> dict[str, Any]:
    prefs: dict[str, Any] = {
        "user_id": user_id,
        "locale": rng.choice(["en", "en", "es"]),
        "timezone": rng.choice(["UTC", "Europe/Madrid", "America/New_York"]),
    }
    if rng.random() < 0.3:
        prefs["opt_out"] = {"marketing": ["email"], "like": ["push"]}
    return prefs


def contacts_for(
    user_id: str,
    rng: random.Random,
    webhook_base: str = "https://hooks.example.com",
    platform: str | None = None,
) -> dict[str, Any]:
    platform = platform or rng.choice(["fcm", "apns"])
    # APNs device tokens are 64 hex digits; FCM registration tokens are opaque strings.
    token = uuid.uuid4().hex * 2 if platform == "apns" else f"fcm-{uuid.uuid4().hex}"
    return {
        "user_id": user_id,
        "devices": [{"token": token, "platform": platform}],
        "email": f"{user_id}@example.com",
        "phone": f"+1555{rng.randrange(10**6, 10**7)}",
        "webhook_url": f"{webhook_base.rstrip('/')}/{user_id}",
    }


def make_event(kind: str, recipient: str, actor: str, rng: random.Random) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "type": kind,
        "event_id": uuid.uuid4().hex,
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor_id": actor,
        "actor_name": actor.capitalize(),
        "recipient_id": recipient,
        "object": {"kind": "photo", "id": f"photo-{rng.randrange(100)}"},
    }
    match kind:
        case "comment":
            event |= {"comment_id": uuid.uuid4().hex[:12], "text": "Great shot!"}
        case "follow":
            event["object"] = {"kind": "profile", "id": recipient}
        case "mention":
            event |= {"text": f"@{recipient} look at this"}
        case "message":
            event |= {"conversation_id": f"c-{actor}-{recipient}", "preview": "Are you free?"}
            event["object"] = {"kind": "conversation", "id": f"c-{actor}-{recipient}"}
        case "payment":
            event |= {
                "amount": f"{rng.randrange(100, 99999) / 100:.2f}",
                "currency": "EUR",
                "status": "succeeded",
            }
            event["object"] = {"kind": "invoice", "id": uuid.uuid4().hex[:10]}
        case "security_alert":
            event |= {"alert": "new_login", "location": "Lisbon, PT"}
            event["object"] = {"kind": "account", "id": recipient}
        case "marketing":
            event |= {
                "campaign_id": "winter-sale",
                "title": "Winter sale",
                "body": "Everything 20% off this week.",
            }
            event["object"] = {"kind": "campaign", "id": "winter-sale"}
        case "live_started":
            del event["recipient_id"]
            event |= {
                "audience": {"kind": "followers", "of": actor},
                "stream_title": "Morning coffee chat",
            }
            event["object"] = {"kind": "stream", "id": uuid.uuid4().hex[:10]}
    return event


def showcase_events(rng: random.Random) -> list[dict[str, Any]]:
    """One event per line of SHOWCASE: together they reach every channel."""
    return [
        make_event(kind, to, "frank" if to != "frank" else "grace", rng) for kind, to, _ in SHOWCASE
    ]


async def send_event(producer: AIOKafkaProducer, prefix: str, event: dict[str, Any]) -> None:
    """To its ingress topic, keyed by the recipient (the actor for a broadcast)."""
    topic = prefix + INGRESS_FOR_TYPE[event["type"]]
    key = (event.get("recipient_id") or event["actor_id"]).encode()
    await producer.send(topic, json.dumps(event).encode(), key=key)


def bad_payloads() -> list[bytes]:
    """Malformed input the demo mixes in, to show the dead-letter path."""
    return [
        b"{not json",
        json.dumps({"schema_version": 1, "type": "poke", "event_id": "x"}).encode(),
        json.dumps({"schema_version": 1, "type": "like", "event_id": "y"}).encode(),
    ]


def event_stream(users: list[str], rng: random.Random) -> Iterator[dict[str, Any]]:
    kinds, weights = zip(*EVENT_MIX, strict=True)
    while True:
        kind = rng.choices(kinds, weights)[0]
        recipient, actor = rng.sample(users, 2)
        yield make_event(kind, recipient, actor, rng)


async def seed_profiles(
    producer: AIOKafkaProducer,
    prefix: str,
    users: list[str],
    rng: random.Random,
    webhook_base: str = "https://hooks.example.com",
) -> None:
    for user in users:
        key = user.encode()
        prefs = preferences_for(user, rng) | _SHOWCASE_PREFS.get(user, {})
        contact = contacts_for(user, rng, webhook_base, _PLATFORM.get(user))
        await producer.send(prefix + PREFERENCES, json.dumps(prefs).encode(), key=key)
        await producer.send(prefix + CONTACTS, json.dumps(contact).encode(), key=key)
    # A small follow graph, so `live_started` broadcasts fan out to someone.
    for actor in users:
        for fan in rng.sample([u for u in users if u != actor], k=len(users) // 2):
            edge = {"actor_id": actor, "follower_id": fan}
            await producer.send(
                prefix + FOLLOWS, json.dumps(edge).encode(), key=edge_key(actor, fan)
            )
    await producer.flush()


async def produce_traffic(
    producer: AIOKafkaProducer,
    prefix: str,
    users: list[str],
    rate: float,
    duration: float | None,
    rng: random.Random,
    bad_every: int = 200,
) -> int:
    """Produce the event mix at `rate`/s until `duration` elapses (or forever). Returns count."""
    sent = 0
    started = time.monotonic()
    bad = bad_payloads()
    for event in event_stream(users, rng):
        if duration is not None and time.monotonic() - started >= duration:
            break
        await send_event(producer, prefix, event)
        sent += 1
        if bad_every and sent % bad_every == 0:
            await producer.send(prefix + "events.social", bad[(sent // bad_every) % len(bad)])
        await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
    await producer.flush()
    return sent
