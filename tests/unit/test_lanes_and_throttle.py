from datetime import UTC, datetime

from logic.buckets import BucketState
from logic.classify import to_notification
from logic.lanes import HELD_WINDOW_S, Route, decide
from logic.rules import load_rules
from logic.throttle import limit_for, take_tokens, wait_needed
from logic.validation import decode_event
from schemas.common import Category, Channel
from schemas.notifications import Notification
from schemas.users import DigestFrequency, Preferences
from tests.factories import event_bytes

RULES = load_rules()
NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
QUIET_NOW = Preferences(user_id="alice", quiet_hours="11:00-13:00", timezone="UTC")


def note(kind: str) -> Notification:
    return to_notification(decode_event(event_bytes(kind), 65536), RULES, NOON)  # type: ignore[arg-type]


def test_critical_always_goes_now_even_in_quiet_hours_with_digest_off() -> None:
    prefs = QUIET_NOW.model_copy(update={"digest": {Category.PAYMENT: DigestFrequency.OFF}})
    d = decide(note("payment"), RULES.for_category(Category.PAYMENT), prefs, NOON)
    assert d.route is Route.DELIVER


def test_social_is_aggregated_in_its_category_window() -> None:
    d = decide(note("like"), RULES.for_category(Category.LIKE), None, NOON)
    assert (d.route, d.window_s, d.hold_until) == (Route.DIGEST, 30, None)


def test_high_goes_now_unless_held_by_quiet_hours() -> None:
    rule = RULES.for_category(Category.MESSAGE)
    assert decide(note("message"), rule, None, NOON).route is Route.DELIVER
    held = decide(note("message"), rule, QUIET_NOW, NOON)
    assert held.route is Route.DIGEST
    assert held.window_s == HELD_WINDOW_S
    assert held.hold_until == datetime(2026, 11, 22, 13, 0, tzinfo=UTC).timestamp()


def test_digest_frequency_from_preferences() -> None:
    rule = RULES.for_category(Category.LIKE)
    for freq, window in ((DigestFrequency.HOURLY, 3600), (DigestFrequency.DAILY, 86400)):
        prefs = Preferences(user_id="alice", digest={Category.LIKE: freq})
        assert decide(note("like"), rule, prefs, NOON).window_s == window
    off = Preferences(user_id="alice", digest={Category.LIKE: DigestFrequency.OFF})
    d = decide(note("like"), rule, off, NOON)
    assert (d.route, d.reason) == (Route.SUPPRESS, "digest_off")


def test_critical_has_no_limit_and_in_app_is_never_limited() -> None:
    assert limit_for(RULES, Category.PAYMENT, Channel.PUSH, None) is None
    assert limit_for(RULES, Category.LIKE, Channel.IN_APP, None) is None
    assert limit_for(RULES, Category.LIKE, Channel.PUSH, None) is not None


def test_user_override_lowers_the_rate_and_the_burst() -> None:
    prefs = Preferences(user_id="alice", rate_limits={Channel.PUSH: 2})
    limit = limit_for(RULES, Category.MESSAGE, Channel.PUSH, prefs)
    assert limit is not None and (limit.per_hour, limit.burst) == (2, 2)


def test_one_token_per_channel_and_the_rest_is_throttled() -> None:
    prefs = Preferences(user_id="alice", rate_limits={Channel.PUSH: 1})
    limits = {
        Channel.PUSH: limit_for(RULES, Category.MESSAGE, Channel.PUSH, prefs),
        Channel.IN_APP: None,
    }
    first = take_tokens([Channel.PUSH, Channel.IN_APP], limits, {}, now=0.0)
    assert first.allowed == {Channel.PUSH, Channel.IN_APP} and not first.throttled
    states: dict[Channel, BucketState | None] = dict(first.updates)
    second = take_tokens([Channel.PUSH, Channel.IN_APP], limits, states, now=1.0)
    assert second.throttled == {Channel.PUSH}
    assert second.allowed == {Channel.IN_APP}
    assert 3590 < wait_needed([Channel.PUSH], limits, states, now=1.0) <= 3600
