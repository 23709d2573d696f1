"""No stage crashes on a record: whatever a record makes a stage's code raise, the record is
dead-lettered with the reason and its original bytes, and the stage goes on with the next.

Faust's own behaviour would be worse in both cases this covers: an exception escaping an
agent's loop crashes and restarts the agent, and the committed offset moves past the record
(it is lost); a record whose bytes do not decode is acked and only logged (lost too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import faust
from faust.types import Message

from logic.deadletter import describe_failure, parse_faults
from streams import deadletter

log = logging.getLogger("clarion.guard")
REASON_STAGE_ERROR = "stage_error"
REASON_UNDECODABLE = "undecodable_record"


class InjectedFault(RuntimeError):
    """Raised by a stage for a record named in CLARION_FAULT_INJECTION (drills and tests)."""


class Guard:
    """One app's stage guard: the faults CLARION_FAULT_INJECTION names, and the size budget
    of its dead letters (settings.dead_letter_max_bytes)."""

    REASON_STAGE_ERROR = REASON_STAGE_ERROR
    REASON_UNDECODABLE = REASON_UNDECODABLE

    def __init__(self, fault_spec: str, dead_letter_budget: int) -> None:
        self._faults = parse_faults(fault_spec)
        self.dead_letter_budget = dead_letter_budget

    async def dead_letter_message(
        self, dlq: faust.TopicT, message: Message, reason: str, exc: BaseException, stage: str
    ) -> None:
        """The message's key and bytes untouched on `dlq`, with the reason in headers; returns
        once the broker has it (streams/deadletter.py retries and holds the record until
        then)."""
        await deadletter.record(
            dlq, message, reason, describe_failure(exc), budget=self.dead_letter_budget, stage=stage
        )

    async def guarded(
        self,
        stage: str,
        dlq: faust.TopicT,
        message: Message,
        work: Awaitable[Any],
    ) -> None:
        """Await one record's processing; if it raises, dead-letter the record and return."""
        _faults = self._faults
        try:
            if _faults and (stage, message.key) in _faults:
                if asyncio.iscoroutine(work):
                    work.close()  # never started: close it so it is not reported as un-awaited
                raise InjectedFault(f"injected fault in {stage}")
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of one record, by design
            log.exception(
                "%s failed on %s[%d]@%d; dead-lettered",
                stage,
                message.topic,
                message.partition,
                message.offset,
            )
            await self.dead_letter_message(dlq, message, REASON_STAGE_ERROR, exc, stage)
