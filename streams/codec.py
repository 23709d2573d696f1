"""Faust codec over pydantic models: JSON on the wire, validated models in the agents."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from faust.serializers.codecs import Codec
from pydantic import TypeAdapter

T = TypeVar("T")


class PydanticCodec(Codec, Generic[T]):  # type: ignore[misc]
    """Serialize one model type (or any type a TypeAdapter takes) to and from JSON bytes.

    pydantic-core parses and validates in one pass, so a topic's values arrive as models
    without an intermediate dict.
    """

    def __init__(self, tp: type[T] | Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.adapter: TypeAdapter[T] = TypeAdapter(tp)

    def _dumps(self, obj: Any) -> bytes:
        return self.adapter.dump_json(obj)

    def _loads(self, s: bytes) -> T:
        return self.adapter.validate_json(s)
