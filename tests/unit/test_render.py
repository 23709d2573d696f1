"""Every event type renders in every locale, with each optional field absent or present, and
a template that fails degrades to fallback text instead of failing the notification."""

from __future__ import annotations

import itertools
import json
import tomllib
import typing
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from jinja2 import TemplateSyntaxError
from pydantic import BaseModel

from logic.classify import to_notification
from logic.fanout import to_follower
from logic.presence import prefer_in_app
from logic.render import GENERIC, Renderer, default_renderer
from logic.routing import TEMPLATE_ERROR, plan_deliveries
from logic.rules import load_rules
from logic.validation import decode_event
from schemas.common import Category, Channel, Lane
from schemas.events import DomainEvent, LiveStartedEvent, ObjectRef
from schemas.notifications import Notification, ReceiptStatus
from schemas.users import ContactPoints, Device
from tests.factories import event_dict

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RULES = load_rules()
CATALOG = tomllib.loads(
    resources.files("logic").joinpath("templates.toml").read_text(encoding="utf-8")
)
# Every locale of the catalog, a region of one (falls back to its language) and one the
# catalog does not have (falls back to the default).
LOCALES = [*sorted(CATALOG), "es-MX", "fr-CA"]

# A value for every optional field of every event model and of ObjectRef. A new optional
# field fails test_every_optional_field_has_a_sample until it gets one here.
SAMPLES: dict[str, Any] = {
    "actor_name": "Bob",
    "ip": "203.0.113.7",
    "location": "Lisbon",
    "title": "Sunset",
    "url": "https://example.com/p/1",
    "image_url": "https://cdn.example.com/p1.jpg",
}
EVENT_MODELS: list[type[BaseModel]] = list(typing.get_args(typing.get_args(DomainEvent)[0]))


def _optional(model: type[BaseModel]) -> set[str]:
    return {name for name, field in model.model_fields.items() if not field.is_required()}


def _event_type(model: type[BaseModel]) -> str:
    return typing.get_args(model.model_fields["type"].annotation)[0]  # type: ignore[no-any-return]


def test_every_optional_field_has_a_sample() -> None:
    fields = set().union(*(_optional(m) for m in EVENT_MODELS), _optional(ObjectRef))
    assert fields - {"schema_version"} <= set(SAMPLES)
    assert {_event_type(m) for m in EVENT_MODELS} == {c.value for c in Category}


def _variants(model: type[BaseModel]) -> list[tuple[str, frozenset[str]]]:
    """(event type, which optional fields are present): none, all, and each one alone, for
    the event's own fields and its object's."""
    fields = sorted(_optional(model) | {f"object.{f}" for f in _optional(ObjectRef)})
    subsets = [frozenset(), frozenset(fields), *(frozenset({f}) for f in fields)]
    return [(_event_type(model), s) for s in subsets]


def _event(kind: str, present: frozenset[str]) -> DomainEvent:
    raw = event_dict(kind, occurred_at=NOW.isoformat())
    obj = {"kind": "photo", "id": "p1"}
    for name in present:
        if name.startswith("object."):
            obj[name.removeprefix("object.")] = SAMPLES[name.removeprefix("object.")]
        else:
            raw[name] = SAMPLES[name]
    [model] = [m for m in EVENT_MODELS if _event_type(m) == kind]
    for name in _optional(model) - present - {"schema_version"}:
        raw.pop(name, None)  # the factory fills some optional fields in (location, actor_name)
    raw["object"] = obj
    decoded = decode_event(json.dumps(raw).encode(), 65536)
    assert isinstance(decoded, BaseModel), decoded
    for name in present:
        target = decoded.object if name.startswith("object.") else decoded  # type: ignore[union-attr]
        assert getattr(target, name.removeprefix("object.")) is not None
    return decoded  # type: ignore[return-value]


def _notification(event: DomainEvent) -> Notification:
    if isinstance(event, LiveStartedEvent):
        return to_follower(event, "alice", RULES, NOW)
    return to_notification(event, RULES, NOW)


CASES = [v for m in EVENT_MODELS for v in _variants(m)]


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("kind", "present"), CASES, ids=[f"{k}-{sorted(p)}" for k, p in CASES])
def test_every_event_renders_in_every_locale(
    kind: str, present: frozenset[str], locale: str
) -> None:
    single = _notification(_event(kind, present))
    for count in (1, 2, 1000):
        n = single.model_copy(update={"count": count, "actors": ("Bob", "Carol")[:count]})
        rendered = default_renderer().render(n, locale)
        assert rendered.fallback is None, rendered.fallback  # the template itself worked
        assert rendered.title and rendered.body
        for text in (rendered.title, rendered.body):
            assert "None" not in text and "Undefined" not in text


def test_security_alert_without_location_is_rendered_without_it() -> None:
    with_location = _notification(_event("security_alert", frozenset({"location"})))
    without = _notification(_event("security_alert", frozenset()))
    assert "from Lisbon" in default_renderer().render(with_location, "en").body
    body = default_renderer().render(without, "en").body
    assert body == "New sign-in to your account. If this wasn't you, secure your account now."


def _catalog(**overrides: dict[str, str]) -> dict[str, dict[str, dict[str, str]]]:
    """The packaged catalog with some templates replaced, keyed "locale.category"."""
    catalog = {loc: dict(cats) for loc, cats in CATALOG.items()}
    for key, parts in overrides.items():
        locale, category = key.split(".")
        catalog[locale][category] = parts
    return catalog


def _alert(location: str | None = None) -> Notification:
    return _notification(
        _event("security_alert", frozenset({"location"}) if location else frozenset())
    )


@pytest.mark.parametrize(
    "body",
    [
        "{{ data.location }}",  # printing a missing optional value is still a template bug
        "{{ data.location.city }}",  # so is reading an attribute of one
        "{{ data.alert | thousands }}",  # a filter raising ValueError
        "{{ {'x': 1}[data.alert] }}",  # an index raising
        "   ",  # renders to nothing
    ],
)
def test_a_failing_template_degrades_to_the_generic_text(body: str) -> None:
    renderer = Renderer(_catalog(**{"en.security_alert": {"title": "Alert", "body": body}}))
    rendered = renderer.render(_alert(), "en")
    assert (rendered.title, rendered.body) == GENERIC[Category.SECURITY_ALERT]
    assert rendered.fallback is not None and "en/security_alert" in rendered.fallback


def test_a_failing_locale_template_falls_back_to_the_default_locale() -> None:
    broken = {"title": "Nuevo", "body": "{{ actor | thousands }}"}
    renderer = Renderer(_catalog(**{"es.like": broken}))
    n = _notification(_event("like", frozenset({"actor_name"})))
    rendered = renderer.render(n, "es-MX")
    assert (rendered.title, rendered.body) == ("New like", "Bob liked your photo")
    assert rendered.fallback is not None and "es/like" in rendered.fallback
    assert "ValueError" in rendered.fallback


def test_a_template_bug_is_still_caught_at_compile_time() -> None:
    with pytest.raises(TemplateSyntaxError):
        Renderer(_catalog(**{"en.like": {"title": "x", "body": "{% if %}"}}))


def test_every_category_has_a_generic_text() -> None:
    assert set(GENERIC) == set(Category)
    assert all(title and body for title, body in GENERIC.values())


CONTACTS = ContactPoints(
    user_id="alice", devices=(Device(token="fcm-token-1234567", platform="fcm"),)
)


def test_a_degraded_plan_still_delivers_and_carries_a_receipt() -> None:
    broken = Renderer(_catalog(**{"en.security_alert": {"title": "A", "body": "{{ data.x }}"}}))
    n = _alert("Lisbon")
    plan = plan_deliveries(n, None, CONTACTS, RULES, broken, NOW)
    channels = {d.channel for d in plan.deliveries}
    assert Channel.IN_APP in channels and Channel.PUSH in channels
    assert all(d.body == GENERIC[Category.SECURITY_ALERT][1] for d in plan.deliveries)
    assert plan.receipt is None  # not dropped
    [note] = plan.notes
    assert (note.status, note.reason) == (ReceiptStatus.DEGRADED, TEMPLATE_ERROR)
    assert note.notification_id == n.notification_id

    # The presence filter keeps the note when it removes the push.
    social = Renderer(_catalog(**{"en.like": {"title": "A", "body": "{{ data.x }}"}}))
    like = _notification(_event("like", frozenset()))
    like_plan = plan_deliveries(like, None, CONTACTS, RULES, social, NOW)
    online = prefer_in_app(like_plan, online=True, lane=Lane.SOCIAL, required=())
    assert {d.channel for d in online.deliveries} == {Channel.IN_APP}
    assert online.notes == like_plan.notes and len(online.notes) == 1


def test_a_plan_rendered_normally_has_no_notes() -> None:
    plan = plan_deliveries(_alert(), None, CONTACTS, RULES, default_renderer(), NOW)
    assert plan.deliveries and plan.notes == ()


def test_optional_fields_cover_every_combination_for_security_alerts() -> None:
    # The one event type with two optional fields of its own: all four combinations.
    for ip, location in itertools.product((None, "203.0.113.7"), (None, "Lisbon")):
        present = frozenset(k for k, v in (("ip", ip), ("location", location)) if v)
        rendered = default_renderer().render(_notification(_event("security_alert", present)), "en")
        assert rendered.fallback is None
        assert ("from Lisbon" in rendered.body) is (location is not None)
