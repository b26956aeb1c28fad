"""Avro values on the log in Confluent's wire format, with schemas from a registry.

``encode`` writes a value with its subject's latest schema, after checking that it fits, so a
value that does not fit fails at the producer with the field named — not at some consumer later.
``decode`` reads any framed value whatever its writer, fetching the writer schema by its id.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro

from services.registry._client import RegistryClient
from services.registry._errors import SchemaValidationError, WireFormatError
from services.registry._schema import AvroSchema
from services.registry._validate import find_mismatch
from services.registry._wire import frame, unframe


class AvroCodec:
    """Encode and decode Confluent-framed Avro through ``registry``.

    ``async with RegistryClient(url) as registry: codec = AvroCodec(registry)``; the codec
    caches parsed schemas by id for as long as it lives.
    """

    def __init__(self, registry: RegistryClient) -> None:
        self._registry = registry
        self._schemas: dict[int, AvroSchema] = {}

    async def encode(self, subject: str, value: Any) -> bytes:
        """``value`` in the subject's latest schema, framed with that schema's id.

        Raises :class:`SchemaValidationError` naming the field that does not fit and what the
        schema expects there; :class:`SubjectNotFoundError` when nothing is registered under
        ``subject``; :class:`RegistryUnavailableError` when the registry does not answer.
        """
        latest = await self._registry.latest(subject)
        schema = self._parsed(latest.schema_id, latest.schema)
        mismatch = find_mismatch(schema.parsed, value, schema.named)
        if mismatch is not None:
            raise SchemaValidationError(subject=subject, schema_id=latest.schema_id,
                                        field=mismatch.path, expected=mismatch.expected,
                                        got=mismatch.got)
        body = io.BytesIO()
        try:
            fastavro.schemaless_writer(body, schema.parsed, value)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # The walker accepted it; fastavro did not. Report it rather than write garbage.
            raise SchemaValidationError(subject=subject, schema_id=latest.schema_id, field="",
                                        expected="a value fastavro can encode",
                                        got=f"{type(exc).__name__}: {exc}") from exc
        return frame(latest.schema_id, body.getvalue())

    async def decode(self, data: bytes) -> Any:
        """The value in a framed record (a ``dict`` for a record schema).

        Raises :class:`WireFormatError` when ``data`` is not framed or does not decode with its
        schema; :class:`SchemaNotFoundError` when the registry does not know the id.
        """
        schema_id, body = unframe(data)
        text = await self._registry.schema(schema_id)
        schema = self._parsed(schema_id, text)
        buffer = io.BytesIO(body)
        try:
            value = fastavro.schemaless_reader(buffer, schema.parsed, None)
        except (EOFError, ValueError, IndexError, TypeError, UnicodeDecodeError) as exc:
            raise WireFormatError(
                f"the body does not decode with schema {schema_id} ({type(exc).__name__}: "
                f"{exc})", schema_id=schema_id) from exc
        left = len(body) - buffer.tell()
        if left:
            raise WireFormatError(
                f"{left} bytes are left after decoding with schema {schema_id}; the record was "
                "not written with that schema", schema_id=schema_id)
        return value

    def _parsed(self, schema_id: int, text: str) -> AvroSchema:
        schema = self._schemas.get(schema_id)
        if schema is None:
            schema = self._schemas[schema_id] = AvroSchema.parse(text)
        return schema
