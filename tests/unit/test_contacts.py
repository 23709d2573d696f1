from logic.contacts import with_channel_disabled, without_addresses
from schemas.common import Channel
from schemas.users import ContactPoints, Device, Preferences

CP = ContactPoints(
    user_id="u1",
    devices=(
        Device(token="fcm-token-aaaa", platform="fcm"),
        Device(token="b" * 64, platform="apns"),
    ),
    email="u1@example.com",
    phone="+15550100001",
    webhook_url="https://hooks.example.com/u1",
)


def test_removes_only_the_dead_addresses() -> None:
    out = without_addresses(CP, {"fcm-token-aaaa", "+15550100001"})
    assert [d.token for d in out.devices] == ["b" * 64]
    assert out.phone is None
    assert out.email == CP.email and out.webhook_url == CP.webhook_url
    assert without_addresses(CP, {"nothing"}) == CP
    gone = without_addresses(CP, {CP.email or "", CP.webhook_url or ""})
    assert gone.email is None and gone.webhook_url is None


def test_disabling_a_channel_keeps_other_choices() -> None:
    prefs = Preferences(
        user_id="u1", timezone="Europe/Paris", disabled_channels=frozenset({Channel.PUSH})
    )
    out = with_channel_disabled(prefs, "u1", Channel.SMS)
    assert out.disabled_channels == {Channel.PUSH, Channel.SMS}
    assert out.timezone == "Europe/Paris"
    assert with_channel_disabled(None, "u2", Channel.SMS).disabled_channels == {Channel.SMS}


def test_sendgrid_events_become_feedback_for_clarion_mail_only() -> None:
    from logic.provider_feedback import from_sendgrid
    from schemas.control import FeedbackKind

    ours = {
        "clarion_recipient_id": "u1",
        "clarion_delivery_id": "d1",
        "clarion_notification_id": "n1",
        "email": "u1@example.com",
        "timestamp": 1_790_000_000,
    }
    events = [
        {**ours, "event": "bounce", "reason": "550 5.1.1 unknown user"},
        {**ours, "event": "delivered"},
        {**ours, "event": "spamreport"},
        {**ours, "event": "deferred"},  # transient: nothing to do
        {"event": "bounce", "email": "x@example.com"},  # not Clarion's mail
    ]
    out = from_sendgrid(events)
    assert [f.kind for f in out] == [
        FeedbackKind.BOUNCED,
        FeedbackKind.DELIVERED,
        FeedbackKind.COMPLAINED,
    ]
    assert out[0].reason == "550 5.1.1 unknown user"
    assert out[0].address == "u1@example.com" and out[0].recipient_id == "u1"
    assert out[0].at.timestamp() == 1_790_000_000
    assert out[0].attempt is None  # mail sent before Clarion echoed the attempt


def test_sendgrid_feedback_carries_the_attempt_the_mail_echoed() -> None:
    from logic.provider_feedback import from_sendgrid

    ours = {
        "event": "bounce",
        "clarion_recipient_id": "u1",
        "clarion_delivery_id": "d1",
        "clarion_notification_id": "n1",
        "email": "u1@example.com",
    }
    attempts = ["2", "0", "x", "-1", "²", "9" * 50]
    out = from_sendgrid({**ours, "clarion_attempt": a} for a in attempts)
    assert [f.attempt for f in out] == [2, 0, None, None, None, None]
