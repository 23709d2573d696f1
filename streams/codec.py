"""Faust codecs: pydantic models (the topics, the profile tables) and msgspec types (the hot
internal table rows), JSON on the wire in both cases."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec
from faust.serializers.codecs import Codec
from pydantic import TypeAdapter

T = TypeVar("T")


class PydanticCodec(Codec, Generic[T]):  # type: ignore[misc]
    """Serialize one model type (or any type a TypeAdapter takes) to and from JSON bytes.

    pydantic-core parses and validates in one pass, so a topic's values arrive as models
    without an intermediate dict.
    """

    def __init__(self, tp: type[T] | Any, *, memo: int = 0, **kwargs: Any) -> None:
        """`memo` > 0 keeps that many decoded values by their bytes: for a table read far
        more often than written (the profiles: every notification reads its recipient's),
        where each read would otherwise validate the same bytes again. Only for frozen
        models, as every reader shares the one value."""
        super().__init__(**kwargs)
        self.adapter: TypeAdapter[T] = TypeAdapter(tp)
        validate: Callable[[bytes], T] = self.adapter.validate_json
        self._decode = functools.lru_cache(maxsize=memo)(validate) if memo else validate

    def _dumps(self, obj: Any) -> bytes:
        return self.adapter.dump_json(obj)

    def _loads(self, s: bytes) -> T:
        return self._decode(s)


class MsgspecCodec(Codec, Generic[T]):  # type: ignore[misc]
    """Serialize one type msgspec knows (a Struct, a scalar, a dict, a union of those) to
    and from JSON bytes: the codec of the hot internal table rows (tables/rows.py)."""

    def __init__(self, tp: type[T] | Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.type = tp
        self.encoder = msgspec.json.Encoder()
        self.decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(tp)

    def _dumps(self, obj: Any) -> bytes:
        return self.encoder.encode(obj)

    def _loads(self, s: bytes) -> T:
        return self.decoder.decode(s)
