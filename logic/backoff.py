"""When to try a failed delivery again: exponential backoff with full jitter, never sooner
than the provider asked (Retry-After), and a last attempt after which it is dead-lettered."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12  # sends in total, the first one included
    base_s: float = 1.0
    cap_s: float = 300.0


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next try of a send that just failed on try `attempt`
    (0-based), or None when that was the last one.

    "Equal jitter": half of min(cap, base·2^attempt) fixed, half uniform at random. The
    random half spreads a crowd of failures so they do not come back as one burst; the fixed
    half gives the tries together a guaranteed span (with the defaults, at least ~6.5 min),
    so a provider outage shorter than that loses nothing. A provider's Retry-After is a
    floor: retrying earlier only collects another 429.
    """
    if attempt + 1 >= policy.max_attempts:
        return None
    ceiling = min(policy.cap_s, policy.base_s * 2.0**attempt)
    delay = ceiling / 2 + (rng or random).uniform(0.0, ceiling / 2)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay
