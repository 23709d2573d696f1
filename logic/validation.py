"""Turn raw ingress bytes into a domain event, or a rejection with a reason for the DLQ."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    detail: str


_MAX_ERRORS_IN_DETAIL = 5


def decode_event(raw: bytes | None, max_bytes: int) -> DomainEvent | Rejection:
    if not raw:
        return Rejection(RejectReason.EMPTY, "the message has no value")
    if len(raw) > max_bytes:
        return Rejection(
            RejectReason.TOO_LARGE, f"{len(raw)} bytes exceeds the limit of {max_bytes} bytes"
        )
    try:
        return domain_event_adapter.validate_json(raw)
    except ValidationError as exc:
        return _rejection_from(exc)


def _rejection_from(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False, include_input=False)
    kinds = {e["type"] for e in errors}
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
