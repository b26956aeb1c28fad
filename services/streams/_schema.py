"""Stream schemas: the typed collections a producer writes and consumers materialize."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import fastavro
import pydantic
from fastavro.validation import ValidationError as AvroValidationError

from services.streams._errors import StreamSchemaError

OPERATIONS = ("insert", "update", "upsert", "delete")


@dataclass(frozen=True, kw_only=True, slots=True)
class Collection:
    """One entity type of a stream: its schema, its State-Protocol ``type``, its key field.

    ``schema`` is a pydantic model class or an Avro record schema (a dict).
    """

    schema: type[pydantic.BaseModel] | Mapping[str, Any]
    type: str
    primary_key: str

    def validate(self, value: Mapping[str, Any] | pydantic.BaseModel) -> dict[str, Any]:
        """``value`` as a JSON-ready dict, or :class:`StreamSchemaError` naming the problem."""
        if isinstance(self.schema, type) and issubclass(self.schema, pydantic.BaseModel):
            try:
                model = (value if isinstance(value, self.schema)
                         else self.schema.model_validate(value))
            except pydantic.ValidationError as exc:
                fields = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
                raise StreamSchemaError(collection=self.type, reason=fields) from exc
            return model.model_dump(mode="json")
        data = (value.model_dump(mode="json") if isinstance(value, pydantic.BaseModel)
                else dict(value))
        try:
            fastavro.validation.validate(data, _parsed(self.schema), raise_errors=True)
        except AvroValidationError as exc:
            raise StreamSchemaError(collection=self.type, reason=str(exc)) from exc
        return data


def _parsed(schema: Mapping[str, Any]) -> Any:
    return fastavro.parse_schema(dict(schema))


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamSchema:
    """The frozen map of collections, keyed by collection name."""

    collections: Mapping[str, Collection]

    def by_type(self, entity_type: str) -> Collection | None:
        """The collection named ``entity_type`` or whose State-Protocol type it is."""
        found = self.collections.get(entity_type)
        if found is not None:
            return found
        return next((c for c in self.collections.values() if c.type == entity_type), None)


def define_stream_schema(
    collections: Mapping[str, Collection | Mapping[str, Any]],
) -> StreamSchema:
    """Freeze ``collections`` into a :class:`StreamSchema`.

    Each entry is a :class:`Collection` or a mapping with ``schema``, ``type`` and
    ``primary_key``. Raises ``ValueError`` on a missing field or an Avro schema fastavro
    cannot parse.
    """
    frozen: dict[str, Collection] = {}
    for name, entry in collections.items():
        if isinstance(entry, Collection):
            collection = entry
        else:
            missing = {"schema", "type", "primary_key"} - set(entry)
            if missing:
                raise ValueError(f"collection {name!r} lacks {', '.join(sorted(missing))}")
            collection = Collection(schema=entry["schema"], type=str(entry["type"]),
                                    primary_key=str(entry["primary_key"]))
        if not collection.type or not collection.primary_key:
            raise ValueError(f"collection {name!r} needs a non-empty type and primary_key")
        if not isinstance(collection.schema, type):
            try:
                _parsed(collection.schema)
            except Exception as exc:
                raise ValueError(f"collection {name!r} has an invalid Avro schema: {exc}") from exc
        frozen[name] = collection
    return StreamSchema(collections=MappingProxyType(frozen))
