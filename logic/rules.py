"""Load and query the classification rules (category -> lane, channels, TTL)."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.common import Category, Channel, Lane


class RateLimit(BaseModel):
    model_config = ConfigDict(frozen=True)

    per_hour: float = Field(gt=0)
    burst: float = Field(ge=1)


class CategoryRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    lane: Lane
    channels: tuple[Channel, ...]
    required: frozenset[Channel] = frozenset()
    ttl_s: int | None = Field(default=None, gt=0)
    window_s: float | None = Field(default=None, gt=0)
    group_by: Literal["object", "category", "conversation"] = "object"
    rate_class: str | None = None
    # Critical only: channels tried one after another until the user confirms (push → SMS
    # → email). The first that has a target goes out at once, each next one only if no
    # confirmation arrived within `confirm_within_s`. Channels not listed go out at once.
    escalate: tuple[Channel, ...] = ()
    confirm_within_s: float = Field(default=120.0, gt=0)

    @property
    def ttl(self) -> timedelta | None:
        return None if self.ttl_s is None else timedelta(seconds=self.ttl_s)

    @model_validator(mode="after")
    def _required_are_default_channels(self) -> CategoryRule:
        extra = self.required - set(self.channels)
        if extra:
            raise ValueError(f"required channels {sorted(extra)} are not in channels")
        stray = set(self.escalate) - set(self.channels)
        if stray:
            raise ValueError(f"escalate channels {sorted(stray)} are not in channels")
        if self.escalate and self.lane is not Lane.CRITICAL:
            raise ValueError("escalate is for critical categories only")
        if Channel.IN_APP in self.escalate:
            raise ValueError("in_app is always delivered at once; it cannot be an escalation step")
        return self


class Rules(BaseModel):
    model_config = ConfigDict(frozen=True)

    categories: dict[Category, CategoryRule]
    rate_limits: dict[str, dict[Channel, RateLimit]] = {}
    max_actors: int = Field(default=3, ge=1, le=20)

    @model_validator(mode="after")
    def _every_category_has_a_rule(self) -> Rules:
        missing = set(Category) - set(self.categories)
        if missing:
            raise ValueError(f"rules missing for categories: {sorted(missing)}")
        unknown = {r.rate_class for r in self.categories.values() if r.rate_class} - set(
            self.rate_limits
        )
        if unknown:
            raise ValueError(f"rate_class without a [rate_limits.*] table: {sorted(unknown)}")
        if Channel.IN_APP in {ch for limits in self.rate_limits.values() for ch in limits}:
            raise ValueError("in_app is the inbox and cannot be rate limited")
        return self

    def limit_for(self, category: Category, channel: Channel) -> RateLimit | None:
        """The channel's limit for this category, or None (critical lanes never have one)."""
        rule = self.categories[category]
        if rule.lane is Lane.CRITICAL or rule.rate_class is None:
            return None
        return self.rate_limits[rule.rate_class].get(channel)

    def for_category(self, category: Category) -> CategoryRule:
        return self.categories[category]


def parse_rules(text: str) -> Rules:
    return Rules.model_validate(tomllib.loads(text))


@lru_cache(maxsize=4)
def load_rules(path: Path | None = None) -> Rules:
    """The rules file at `path`, or the packaged default."""
    if path is None:
        text = resources.files("logic").joinpath("rules.toml").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    return parse_rules(text)
