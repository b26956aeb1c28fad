"""Typed message payloads: each message type a saga handles may declare its payload's schema.

A schema is an Avro record under ``schemas/`` (:func:`avro_payload`) or a pydantic model; the
sagas API validates a published payload against it and names the field at fault, so a bad
message is refused at the edge instead of failing a handler later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pydantic

from services.registry._schema import AvroSchema
from services.registry._validate import find_mismatch

SCHEMAS_ROOT = Path(__file__).resolve().parents[2] / "schemas"


@dataclass(frozen=True, kw_only=True, slots=True)
class PayloadIssue:
    """Why a payload does not fit its schema: the field (dotted path) and what was expected."""

    field: str
    detail: str


class PayloadSchema(Protocol):
    """What the runtime needs of a payload schema."""

    @property
    def name(self) -> str: ...

    def issues(self, payload: Mapping[str, Any]) -> list[PayloadIssue]:
        """Every problem with ``payload`` (empty when it fits)."""
        ...

    def document(self) -> Mapping[str, Any] | None:
        """The Avro schema, when there is one (registered under the bus topic's subjects)."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class AvroPayload:
    """A payload described by an Avro record."""

    schema: AvroSchema
    source: str = ""
    _document: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.schema.full_name or self.source

    def issues(self, payload: Mapping[str, Any]) -> list[PayloadIssue]:
        mismatch = find_mismatch(self.schema.parsed, dict(payload), self.schema.named)
        if mismatch is None:
            return []
        return [PayloadIssue(field=mismatch.path or "payload",
                             detail=f"expected {mismatch.expected}, got {mismatch.got}")]

    def document(self) -> Mapping[str, Any] | None:
        return self._document


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelPayload:
    """A payload described by a pydantic model."""

    model: type[pydantic.BaseModel]

    @property
    def name(self) -> str:
        return self.model.__name__

    def issues(self, payload: Mapping[str, Any]) -> list[PayloadIssue]:
        try:
            self.model.model_validate(dict(payload))
        except pydantic.ValidationError as exc:
            return [PayloadIssue(field=".".join(str(p) for p in error["loc"]) or "payload",
                                 detail=error["msg"]) for error in exc.errors()]
        return []

    def document(self) -> Mapping[str, Any] | None:
        return None


def avro_payload(path: str | Path) -> AvroPayload:
    """The Avro record at ``path`` (relative paths are under the repository's ``schemas/``)."""
    file = Path(path)
    if not file.is_absolute():
        file = SCHEMAS_ROOT / file
    text = file.read_text()
    return AvroPayload(schema=AvroSchema.parse(text), source=str(path),
                       _document=json.loads(text))


def payload_schema(spec: PayloadSchema | type[pydantic.BaseModel] | str | Path
                   ) -> PayloadSchema:
    """Normalise what ``.on(..., payload=...)`` accepts into a :class:`PayloadSchema`."""
    if isinstance(spec, type) and issubclass(spec, pydantic.BaseModel):
        return ModelPayload(model=spec)
    if isinstance(spec, str | Path):
        return avro_payload(spec)
    return spec
