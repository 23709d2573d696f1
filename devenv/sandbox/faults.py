"""Fault injection rules: make a provider slow, failing or hanging on demand."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

# Checked so a misspelt provider fails the setup instead of silently never matching.
PROVIDERS = frozenset({"apns", "fcm", "sendgrid", "twilio", "webhook"})


@dataclass
class FaultRule:
    """What to do to the next matching request(s).

    ``status``/``error`` describe the failure answer (``error`` is the provider's own
    code, e.g. ``UNREGISTERED`` for FCM or ``21610`` for Twilio; each provider maps a
    missing ``status`` from it). With neither set, the rule only adds latency and the
    request then succeeds normally. SendGrid's ``error="bounce"`` (no ``status``) accepts
    the mail and then reports a bounce through the Event Webhook.
    """

    provider: str
    target: str | None = None
    latency_ms: int = 0
    status: int | None = None
    error: str | None = None
    retry_after_s: float | None = None
    # None = forever; otherwise the rule is dropped after applying N times.
    times: int | None = None
    # Hang (until the server stops or ``hang_s`` passes) so the client times out.
    timeout: bool = False
    hang_s: float = 300.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            # Fail loudly: a typo in a fault would otherwise silently test nothing.
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if data.get("provider") not in PROVIDERS:
            raise ValueError(
                f"unknown provider {data.get('provider')!r}; one of {sorted(PROVIDERS)}"
            )
        if "error" in data and data["error"] is not None:
            data = {**data, "error": str(data["error"])}
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fails(self) -> bool:
        return self.status is not None or self.error is not None


class FaultTable:
    """Active rules; a target-specific rule wins over a provider-wide one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        if rule.times is not None and rule.times <= 0:
            raise ValueError("times must be positive (omit it for 'forever')")
        with self._lock:
            self._rules.append(rule)

    def clear(self, provider: str | None = None) -> None:
        with self._lock:
            self._rules = [
                r for r in self._rules if provider is not None and r.provider != provider
            ]

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, provider: str, targets: list[str]) -> FaultRule | None:
        """Find the rule for this request and consume one of its ``times``."""
        with self._lock:
            candidates = [r for r in self._rules if r.provider == provider]
            rule = next(
                (r for r in candidates if r.target is not None and r.target in targets), None
            )
            if rule is None:
                rule = next((r for r in candidates if r.target is None), None)
            if rule is None:
                return None
            if rule.times is not None:
                rule.times -= 1
                if rule.times == 0:
                    self._rules.remove(rule)
            return rule
