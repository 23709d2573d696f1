"""Render a notification's title and body from the per-locale Jinja2 templates.

A template that fails never fails the notification: the user's locale falls back to the
default locale's template, then to a plain generic text per category, and the plan records
why (`Rendered.fallback`) so routing can write a receipt about it.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from jinja2 import Environment, StrictUndefined, Template

from schemas.common import Category
from schemas.notifications import Notification

DEFAULT_LOCALE = "en"

log = logging.getLogger("clarion.render")

# The text of last resort: no variables, so it cannot fail. Deliberately vague (the template
# that knows the details failed); the critical ones still tell the user what to do.
GENERIC: dict[Category, tuple[str, str]] = {
    Category.LIKE: ("New like", "Someone liked your post."),
    Category.COMMENT: ("New comment", "Someone commented on your post."),
    Category.FOLLOW: ("New follower", "Someone started following you."),
    Category.MENTION: ("You were mentioned", "Someone mentioned you."),
    Category.MESSAGE: ("New message", "You have a new message."),
    Category.PAYMENT: ("Payment update", "There is an update on one of your payments."),
    Category.SECURITY_ALERT: (
        "Security alert",
        "There was security activity on your account. If this wasn't you, secure your account now.",
    ),
    Category.MARKETING: ("New offer", "Open the app to see what's new."),
    Category.LIVE_STARTED: ("Live now", "Someone you follow is live."),
}


class OptionalUndefined(StrictUndefined):
    """Strict, except that a missing value is false in a test: `{% if data.location %}` on an
    event without its optional `location` takes the else branch, while printing, iterating,
    comparing or reading an attribute of a missing value still raises (a template bug)."""

    __slots__ = ()

    def __bool__(self) -> bool:  # type: ignore[override]  # the base only raises
        return False


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str
    # Why the user's locale template was not used ("<locale>/<category>: <error>"), or None.
    fallback: str | None = None


class Renderer:
    """Compiles every template once; rendering is then a dict lookup and a template call."""

    def __init__(self, catalog: dict[str, dict[str, dict[str, str]]]) -> None:
        # Plain text out (push, SMS, in-app): no HTML autoescaping here; the email sink
        # escapes when it builds HTML.
        env = Environment(
            autoescape=False, undefined=OptionalUndefined, keep_trailing_newline=False
        )
        env.filters["thousands"] = lambda n: f"{int(n):,}"
        self._templates: dict[tuple[str, Category], tuple[Template, Template]] = {}
        for locale, categories in catalog.items():
            for category, parts in categories.items():
                self._templates[(locale, Category(category))] = (
                    env.from_string(parts["title"]),
                    env.from_string(parts["body"]),
                )
        missing = [c for c in Category if (DEFAULT_LOCALE, c) not in self._templates]
        if missing:
            raise ValueError(f"no {DEFAULT_LOCALE!r} template for {missing}")

    def _candidates(self, locale: str, category: Category) -> list[tuple[str, Template, Template]]:
        """The user's template (locale, then its language), then the default locale's."""
        order = [c for c in (locale, locale.split("-")[0]) if (c, category) in self._templates]
        chosen = [order[0]] if order and order[0] != DEFAULT_LOCALE else []
        return [(c, *self._templates[(c, category)]) for c in (*chosen, DEFAULT_LOCALE)]

    def render(self, notification: Notification, locale: str) -> Rendered:
        context = {
            "actor": notification.actor_name or notification.actor_id,
            "others": notification.count - 1,
            "count": notification.count,
            "actors": notification.actors,
            "object": notification.object,
            "data": notification.data,
        }
        failure: str | None = None
        for used, title, body in self._candidates(locale, notification.category):
            # Any exception: a template can raise from a filter, an index or a test, and a
            # notification (a security alert) must not be lost to its text.
            try:
                rendered = Rendered(
                    title=title.render(context).strip(), body=body.render(context).strip()
                )
            except Exception as exc:
                failure = failure or f"{used}/{notification.category.value}: {exc!r}"
                continue
            if not rendered.title or not rendered.body:
                failure = failure or f"{used}/{notification.category.value}: empty text"
                continue
            if failure is None:
                return rendered
            return self._fell_back(notification, rendered, failure)
        generic = Rendered(*GENERIC[notification.category])
        return self._fell_back(notification, generic, failure or "no template")

    @staticmethod
    def _fell_back(notification: Notification, text: Rendered, reason: str) -> Rendered:
        log.warning(
            "notification %s rendered with fallback text: %s",
            notification.notification_id,
            reason,
        )
        return Rendered(text.title, text.body, fallback=reason)


@lru_cache(maxsize=1)
def default_renderer() -> Renderer:
    text = resources.files("logic").joinpath("templates.toml").read_text(encoding="utf-8")
    return Renderer(tomllib.loads(text))
