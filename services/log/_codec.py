"""Version-agnostic request decoding and response encoding on aiokafka's schemas.

Handlers work with plain dicts whose keys are the schema's field names. Decoding turns a
request body into such a dict (arrays of structs become lists of dicts); encoding takes a dict
and writes exactly the fields the negotiated version has, so one handler serves every version:
fields a version lacks are dropped, and fields it has but the handler left out take a neutral
default (0, "", empty array).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from aiokafka.protocol.types import (
    Array,
    Boolean,
    Bytes,
    CompactBytes,
    Int8,
    Int16,
    Int32,
    Int64,
    Schema,
    String,
    TaggedFields,
    UnsignedVarInt32,
)

from services.log._schemas import Uuid

Fields = dict[str, Any]


def decode(schema: Schema, data: BytesIO) -> Fields:
    """Decode a request body into a dict keyed by field name."""
    return _to_dict(schema, schema.decode(data))


def encode(schema: Schema, fields: Fields) -> bytes:
    """Encode ``fields`` with ``schema``; absent fields take a neutral default."""
    return bytes(schema.encode(_to_values(schema, fields)))


def _to_dict(schema: Schema, values: Any) -> Fields:
    out: Fields = {}
    for name, kind, value in zip(schema.names, schema.fields, values, strict=True):
        if isinstance(kind, Schema):
            out[name] = _to_dict(kind, value)
        elif isinstance(kind, Array) and isinstance(kind.array_of, Schema):
            out[name] = None if value is None else [_to_dict(kind.array_of, v) for v in value]
        else:
            out[name] = value
    return out


def _to_values(schema: Schema, fields: Fields) -> list[Any]:
    values: list[Any] = []
    for name, kind in zip(schema.names, schema.fields, strict=True):
        value = fields.get(name, _MISSING)
        if value is _MISSING:
            value = _default(kind)
        if isinstance(kind, Schema):
            value = _to_values(kind, value)
        elif isinstance(kind, Array) and isinstance(kind.array_of, Schema) and value is not None:
            value = [_to_values(kind.array_of, item) for item in value]
        values.append(value)
    return values


_MISSING = object()


def _default(kind: Any) -> Any:
    if isinstance(kind, Array):  # includes CompactArray
        return []
    if isinstance(kind, Schema):
        return {}
    if kind is TaggedFields:
        return {}
    if isinstance(kind, String):  # includes CompactString
        return ""
    if kind in (Bytes, CompactBytes):
        return b""
    if kind is Boolean:
        return False
    if kind in (Int8, Int16, Int32, Int64, UnsignedVarInt32):
        return 0
    if kind is Uuid:
        return Uuid.ZERO
    raise TypeError(f"no default for field type {kind!r}")


__all__ = ["Fields", "decode", "encode"]
