"""Turn raw ingress bytes into a domain event, or a rejection with a reason for the DLQ."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import ValidationError

from schemas.events import DomainEvent, domain_event_adapter


class RejectReason(StrEnum):
    EMPTY = "empty_payload"
    TOO_LARGE = "payload_too_large"
    MALFORMED_JSON = "malformed_json"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_TYPE = "missing_type"
    NOT_AN_OBJECT = "not_an_object"
    UNSUPPORTED_VERSION = "unsupported_schema_version"
    SCHEMA_VIOLATION = "schema_violation"
    BAD_KEY = "bad_key"
    NUMBER_TOO_LARGE = "number_too_large"
    IN_FUTURE = "occurred_at_in_future"


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    detail: str


@dataclass(frozen=True)
class EventClock:
    """The time of the check and how far ahead of it an event's `occurred_at` may be: a
    producer's clock may run a little fast, but an event from the future would hold its TTL
    (counted from occurred_at) open for as long as it pleases."""

    now: datetime
    max_future_skew_s: float

    @property
    def latest(self) -> datetime:
        return self.now + timedelta(seconds=self.max_future_skew_s)


_MAX_ERRORS_IN_DETAIL = 5
# pydantic-core's JSON parser (jiter) refuses an integer of more digits than this (Python's
# default int-string limit, fixed in jiter whatever sys.set_int_max_str_digits says).
MAX_INT_DIGITS = 4300
_OUT_OF_RANGE = re.compile(r"number out of range(?: at (line \d+ column \d+))?")


def decode_event(
    raw: bytes | None, max_bytes: int, clock: EventClock | None = None
) -> DomainEvent | Rejection:
    """Validate raw ingress bytes. With a `clock`, an event whose occurred_at is further in
    the future than its skew allowance is rejected; without one, event time is not checked."""
    if not raw:
        return Rejection(RejectReason.EMPTY, "the message has no value")
    if len(raw) > max_bytes:
        return Rejection(
            RejectReason.TOO_LARGE, f"{len(raw)} bytes exceeds the limit of {max_bytes} bytes"
        )
    try:
        event = domain_event_adapter.validate_json(raw)
    except ValidationError as exc:
        return _rejection_from(exc)
    if clock is not None and event.occurred_at > clock.latest:
        return Rejection(
            RejectReason.IN_FUTURE,
            f"occurred_at {event.occurred_at.isoformat()} is more than "
            f"{clock.max_future_skew_s:g} s ahead of {clock.now.isoformat()} "
            f"(latest accepted {clock.latest.isoformat()})",
        )
    return event


def _rejection_from(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False, include_input=False)
    kinds = {e["type"] for e in errors}
    for err in errors:
        # Valid JSON the parser cannot hold (a 5,000-digit integer, say in an unknown field
        # that would be ignored): say so rather than call the document malformed.
        found = _OUT_OF_RANGE.search(err["msg"]) if err["type"] == "json_invalid" else None
        if found:
            where = f" at {found.group(1)}" if found.group(1) else ""
            return Rejection(
                RejectReason.NUMBER_TOO_LARGE,
                f"a number{where} has more than {MAX_INT_DIGITS} digits, the longest the "
                "JSON parser reads",
            )
    if "json_invalid" in kinds or "json_type" in kinds:
        return Rejection(RejectReason.MALFORMED_JSON, _summarize(errors))
    if "union_tag_invalid" in kinds:
        return Rejection(RejectReason.UNKNOWN_TYPE, _summarize(errors))
    if "dict_type" in kinds or "model_attributes_type" in kinds:
        return Rejection(RejectReason.NOT_AN_OBJECT, _summarize(errors))
    if "union_tag_not_found" in kinds:
        return Rejection(RejectReason.MISSING_TYPE, _summarize(errors))
    if any(e["type"] == "literal_error" and e["loc"][-1] == "schema_version" for e in errors):
        return Rejection(RejectReason.UNSUPPORTED_VERSION, _summarize(errors))
    return Rejection(RejectReason.SCHEMA_VIOLATION, _summarize(errors))


def _summarize(errors: list) -> str:  # type: ignore[type-arg]
    parts = []
    for err in errors[:_MAX_ERRORS_IN_DETAIL]:
        # The first loc item of a tagged union is the tag itself; it adds nothing.
        loc = ".".join(str(p) for p in err["loc"][1:]) or str(err["loc"][0] if err["loc"] else "")
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    if len(errors) > _MAX_ERRORS_IN_DETAIL:
        parts.append(f"… and {len(errors) - _MAX_ERRORS_IN_DETAIL} more")
    return "; ".join(parts)
