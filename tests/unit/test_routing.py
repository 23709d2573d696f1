from datetime import UTC, datetime, timedelta

from logic.classify import to_notification
from logic.render import default_renderer
from logic.routing import plan_deliveries
from logic.rules import load_rules
from logic.validation import decode_event
from schemas.common import Category, Channel
from schemas.notifications import Notification, ReceiptStatus
from schemas.users import ContactPoints, Device, Preferences
from tests.factories import event_bytes

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CONTACTS = ContactPoints(
    user_id="alice",
    devices=(
        Device(token="fcm-token-1234567", platform="fcm"),
        Device(token="apns-token-7654321", platform="apns"),
    ),
    email="alice@example.com",
    phone="+15551234567",
    webhook_url="https://hooks.example.com/alice",
)


def _notification(kind: str, **overrides: object) -> Notification:
    overrides.setdefault("occurred_at", NOW.isoformat())
    event = decode_event(event_bytes(kind, **overrides), 65536)
    return to_notification(event, load_rules(), NOW)  # type: ignore[arg-type]


def _plan(
    n: Notification,
    prefs: Preferences | None = None,
    contacts: ContactPoints | None = CONTACTS,
    now: datetime = NOW,
):  # type: ignore[no-untyped-def]
    return plan_deliveries(n, prefs, contacts, load_rules(), default_renderer(), now)


def test_like_goes_in_app_and_to_every_device() -> None:
    plan = _plan(_notification("like"))
    assert [(d.channel, d.target.address) for d in plan.deliveries] == [
        (Channel.IN_APP, "alice"),
        (Channel.PUSH, "fcm-token-1234567"),
        (Channel.PUSH, "apns-token-7654321"),
    ]
    assert plan.deliveries[0].body == "Bob liked your photo"
    assert plan.receipt is None


def test_opt_out_removes_that_channel_for_that_category_only() -> None:
    prefs = Preferences(user_id="alice", opt_out={Category.LIKE: frozenset({Channel.PUSH})})
    assert {d.channel for d in _plan(_notification("like"), prefs).deliveries} == {Channel.IN_APP}
    assert Channel.PUSH in {d.channel for d in _plan(_notification("follow"), prefs).deliveries}


def test_required_channels_survive_opt_outs() -> None:
    prefs = Preferences(user_id="alice", disabled_channels=frozenset(Channel))
    channels = {d.channel for d in _plan(_notification("security_alert"), prefs).deliveries}
    assert channels == {Channel.IN_APP, Channel.EMAIL}


def test_everything_opted_out_yields_a_suppressed_receipt() -> None:
    prefs = Preferences(user_id="alice", opt_out={Category.MARKETING: frozenset(Channel)})
    plan = _plan(_notification("marketing"), prefs)
    assert plan.deliveries == ()
    assert plan.receipt is not None
    assert (plan.receipt.status, plan.receipt.reason) == (ReceiptStatus.SUPPRESSED, "opted_out")


def test_unknown_contacts_leave_in_app_only() -> None:
    plan = _plan(_notification("payment"), contacts=None)
    assert [d.channel for d in plan.deliveries] == [Channel.IN_APP]


def test_past_ttl_is_dropped_with_an_expired_receipt() -> None:
    old = NOW - timedelta(hours=1)
    plan = _plan(_notification("like", occurred_at=old.isoformat()), now=NOW + timedelta(hours=6))
    assert plan.deliveries == ()
    assert plan.receipt is not None and plan.receipt.status is ReceiptStatus.EXPIRED


def test_locale_falls_back_to_language_then_english() -> None:
    prefs = Preferences(user_id="alice", locale="es-MX")
    assert _plan(_notification("like"), prefs).deliveries[0].body == "A Bob le gustó tu photo"
    assert _plan(_notification("comment"), prefs).deliveries[0].body.startswith("Bob commented")


def test_security_alert_text_names_the_alert() -> None:
    body = _plan(_notification("security_alert")).deliveries[0].body
    assert body.startswith("New sign-in to your account from Lisbon.")
