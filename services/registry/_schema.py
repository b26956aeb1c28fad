"""A parsed Avro schema: its canonical text, and the forms the checker and the codec use.

A schema is parsed twice, by Apache Avro (whose ``compatibility`` module is the reference
implementation of schema resolution) and by fastavro (which encodes and decodes); text either
rejects is not a schema. Two texts that differ only in layout or key order have the same
canonical text, which is what the registry deduplicates on and answers with — as Confluent's
registry does.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import avro.errors
import avro.name
import avro.schema
import fastavro
from fastavro.schema import SchemaParseException as FastavroParseError

from services.registry._errors import InvalidSchemaError
from services.registry._validate import describe_type, find_mismatch


@dataclass(frozen=True, kw_only=True, slots=True)
class AvroSchema:
    """One Avro schema; equal when their canonical texts are."""

    canonical: str
    """The normalized JSON text (no whitespace; fixed key order; full names)."""
    avro: avro.schema.Schema = field(compare=False, repr=False)
    """Apache Avro's form, for compatibility checks."""
    parsed: Any = field(compare=False, repr=False)
    """fastavro's parsed form, for encoding and decoding."""
    named: Mapping[str, Any] = field(compare=False, repr=False)
    """fastavro's named types by full name."""

    @classmethod
    def parse(cls, text: str | Mapping[str, Any] | list[Any]) -> AvroSchema:
        """Parse a schema from its JSON text (or decoded JSON).

        Raises :class:`InvalidSchemaError` naming what is wrong: bad JSON, an unknown type, a
        default that does not fit its field's type.
        """
        if isinstance(text, str):
            try:
                document = json.loads(text)
            except ValueError as exc:
                raise InvalidSchemaError(
                    f"Invalid schema: not JSON ({exc}); send the Avro schema as a JSON string "
                    'in the "schema" member, e.g. {"schema": "{\\"type\\": \\"string\\"}"}'
                ) from None
        else:
            document = text
        try:
            with warnings.catch_warnings():
                # An unknown or invalid logical type is read as its underlying type, as the
                # Avro specification says; Apache Avro warns about it, which is not an error.
                warnings.simplefilter("ignore", avro.errors.IgnoredLogicalType)
                parsed_avro = avro.schema.make_avsc_object(document, avro.name.Names())
        except (avro.errors.AvroException, TypeError, KeyError, AttributeError) as exc:
            raise InvalidSchemaError(
                f"Invalid schema: {exc}; see the Avro specification's schema declarations"
            ) from None
        named: dict[str, Any] = {}
        try:
            # Defaults are checked below, with a message naming the field.
            parsed = fastavro.parse_schema(document, named_schemas=named,
                                           _ignore_default_error=True)
        except (FastavroParseError, TypeError, KeyError, ValueError) as exc:
            raise InvalidSchemaError(
                f"Invalid schema: {exc}; see the Avro specification's schema declarations"
            ) from None
        _check_defaults(parsed, named)
        canonical = json.dumps(_ordered(parsed_avro.to_json()), separators=(",", ":"))
        return cls(canonical=canonical, avro=parsed_avro, parsed=parsed, named=named)

    @property
    def full_name(self) -> str | None:
        """The full name of a named schema (record, enum, fixed); ``None`` for the others."""
        name = getattr(self.avro, "fullname", None)
        return name if isinstance(name, str) else None


_KEY_ORDER = ("type", "name", "namespace", "doc", "aliases", "fields", "symbols", "items",
              "values", "size", "logicalType", "precision", "scale", "default", "order")


def _ordered(document: Any) -> Any:
    """``document`` with members in the conventional order (``name`` before ``type`` in fields).

    Apache Avro emits ``type`` before ``name`` in fields; people and Confluent's registry write
    the reverse, so the canonical text follows them.
    """
    if isinstance(document, list):
        return [_ordered(item) for item in document]
    if not isinstance(document, dict):
        return document
    is_field = "name" in document and "type" in document and not (
        isinstance(document["type"], str) and document["type"] in _NAMED_KINDS)
    order = ("name", "type", "doc", "default", "order", "aliases") if is_field else _KEY_ORDER
    keys = sorted(document, key=lambda k: order.index(k) if k in order else len(order))
    return {key: _ordered(document[key]) for key in keys}


_NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})


def _check_defaults(parsed: Any, named: Mapping[str, Any]) -> None:
    """Every field default must fit its field's type, or readers fail on old data later."""
    seen: set[str] = set()
    pending = [parsed]
    while pending:
        schema = pending.pop()
        if isinstance(schema, list):
            pending.extend(schema)
            continue
        if isinstance(schema, str):
            if schema in named and schema not in seen:
                seen.add(schema)
                pending.append(named[schema])
            continue
        if not isinstance(schema, dict):
            continue
        kind = schema.get("type")
        if kind in ("record", "error"):
            seen.add(str(schema.get("name")))
            for item in schema.get("fields", []):
                if "default" in item:
                    mismatch = find_mismatch(item["type"], item["default"], named,
                                             json_domain=True)
                    if mismatch is not None:
                        raise InvalidSchemaError(
                            f"Invalid schema: the default of field {item['name']!r} in "
                            f"{schema.get('name')} is {json.dumps(item['default'])}, which is "
                            f"not {describe_type(item['type'], named)} (a union's default must "
                            "fit its first branch); fix the default or reorder the union"
                        )
                pending.append(item["type"])
        elif kind == "array":
            pending.append(schema.get("items"))
        elif kind == "map":
            pending.append(schema.get("values"))
        elif isinstance(kind, dict | list):
            pending.append(kind)
