"""Confluent's wire format: magic byte ``0``, the schema id as 4 big-endian bytes, the body.

Every Confluent serializer (Java, librdkafka's serdes, confluent-kafka) frames Avro this way, so
the id tells any consumer which registered schema wrote the record.
"""

from __future__ import annotations

import struct

from services.registry._errors import WireFormatError

MAGIC = 0
HEADER = struct.Struct(">bI")


def frame(schema_id: int, body: bytes) -> bytes:
    """``body`` prefixed with the magic byte and ``schema_id``."""
    return HEADER.pack(MAGIC, schema_id) + body


def is_framed(data: bytes | None) -> bool:
    """Whether ``data`` starts like a Confluent-framed value (text and JSON never do)."""
    return data is not None and len(data) >= HEADER.size and data[0] == MAGIC


def unframe(data: bytes) -> tuple[int, bytes]:
    """The schema id and the body of a framed value; :class:`WireFormatError` if not framed."""
    if len(data) < HEADER.size:
        raise WireFormatError(f"{len(data)} bytes is shorter than the 5-byte header")
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WireFormatError(f"the first byte is {data[0]}, not the magic byte 0")
    return schema_id, data[HEADER.size:]
