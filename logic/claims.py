"""Claims on work in flight: the first holder of a key does the work, a later caller with
the same key waits for the holder's outcome instead of doing it again.

The provider sinks claim a delivery id before its send, so two copies of one delivery
record (a producer retry, a retry republished twice) never mean two sends: the idempotency
ledger only knows a send once it has finished, so a copy that arrives while the first is
still in flight would pass it. Both copies carry the same key, hence the same partition,
worker and sink agent, so a claim held in this process is enough.

asyncio only, no Faust.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")  # the outcome


class Claims(Generic[K, V]):
    def __init__(self) -> None:
        self._held: dict[K, asyncio.Future[V | None]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: object) -> bool:
        return key in self._held

    async def claim(self, key: K) -> V | None:
        """None: the caller now holds `key` and must `release` it (try/finally). Otherwise
        the outcome of the holder that was in flight: the caller must not do the work.

        A holder that gives up without an outcome (its work raised or was cancelled) wakes
        the waiters, and one of them takes the claim: the work is then not lost, and still
        done by one caller at a time.
        """
        while True:
            held = self._held.get(key)
            if held is None:
                # No await between the look-up and the insert: asyncio switches tasks only
                # at an await, so two callers cannot both find the key free.
                self._held[key] = asyncio.get_running_loop().create_future()
                return None
            # shield: a waiter that is cancelled must not cancel the holder's future, which
            # the other waiters share.
            outcome = await asyncio.shield(held)
            if outcome is not None:
                return outcome

    def release(self, key: K, outcome: V | None) -> None:
        """End the claim with the holder's outcome (None: no outcome, a waiter takes over)."""
        held = self._held.pop(key, None)
        if held is not None and not held.done():
            held.set_result(outcome)


def copy_reason(first_outcome: str) -> str:
    """The `skipped` receipt's reason for a copy that waited for the first's outcome.

    Whatever that outcome, the copy does not send: `sent` is the ledger's `already_sent`; a
    first that failed transiently already put the delivery on the retry topic (or retried
    in place), and that retry is the one that sends; a permanent failure or an expiry
    would only come out the same way again and dead-letter the delivery twice.
    """
    return "already_sent" if first_outcome == "sent" else f"duplicate_of:{first_outcome}"
