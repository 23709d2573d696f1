"""Render a notification's title and body from the per-locale Jinja2 templates."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from jinja2 import Environment, StrictUndefined, Template

from schemas.common import Category
from schemas.notifications import Notification

DEFAULT_LOCALE = "en"


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str


class Renderer:
    """Compiles every template once; rendering is then a dict lookup and a template call."""

    def __init__(self, catalog: dict[str, dict[str, dict[str, str]]]) -> None:
        # Plain text out (push, SMS, in-app): no HTML autoescaping here; the email sink
        # escapes when it builds HTML.
        env = Environment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=False)
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

    def _lookup(self, locale: str, category: Category) -> tuple[Template, Template]:
        for candidate in (locale, locale.split("-")[0], DEFAULT_LOCALE):
            found = self._templates.get((candidate, category))
            if found is not None:
                return found
        raise KeyError(category)  # unreachable: the default locale covers every category

    def render(self, notification: Notification, locale: str) -> Rendered:
        title, body = self._lookup(locale, notification.category)
        context = {
            "actor": notification.actor_name or notification.actor_id,
            "others": notification.count - 1,
            "count": notification.count,
            "actors": notification.actors,
            "object": notification.object,
            "data": notification.data,
        }
        return Rendered(title=title.render(context).strip(), body=body.render(context).strip())


@lru_cache(maxsize=1)
def default_renderer() -> Renderer:
    text = resources.files("logic").joinpath("templates.toml").read_text(encoding="utf-8")
    return Renderer(tomllib.loads(text))
