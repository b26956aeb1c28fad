"""Does a Python value fit an Avro schema? If not, which field, and what was expected?

fastavro's own validator names the record a field belongs to (``netscript.streams.Headers.op``)
rather than the path from the root, and reports a missing field as the whole record failing;
this walker reports ``headers.operation`` / ``items[2]`` and says what the schema wants there,
which is what a person fixing the value needs.

It walks a schema parsed by ``fastavro.parse_schema`` (named types referenced by full name and
looked up in ``named``). ``json_domain=True`` checks a field *default* instead of a datum: there
bytes and fixed are JSON strings and a union's default must fit its first branch (Avro spec).
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Mismatch:
    """Where a value stops fitting its schema."""

    path: str
    expected: str
    got: str


def find_mismatch(
    schema: Any, value: Any, named: Mapping[str, Any], *, json_domain: bool = False
) -> Mismatch | None:
    """The first place ``value`` does not fit ``schema``, or ``None`` when it fits."""
    return _Walker(named, json_domain).check(schema, value, [])


def describe_type(schema: Any, named: Mapping[str, Any]) -> str:
    """What ``schema`` accepts, in words (``a long (64-bit integer)``, ``one of: null, ...``)."""
    return _Walker(named, False).describe(schema)


def describe_value(value: Any) -> str:
    """A short rendering of ``value`` and its type for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, Mapping):
        keys = ", ".join(str(key) for key in list(value)[:8])
        return f"an object with keys {{{keys}}}" if keys else "an empty object"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} item(s)"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _render(path: list[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("["):
            out += part
        else:
            out += ("." if out else "") + part
    return out


class _Walker:
    def __init__(self, named: Mapping[str, Any], json_domain: bool) -> None:
        self._named = named
        self._json = json_domain

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            return self._named.get(schema, schema)
        if isinstance(schema, dict) and schema.get("type") in _PRIMITIVES and not (
            schema.get("logicalType")
        ):
            return schema["type"]
        return schema

    # ------------------------------------------------------------------ describing

    def describe(self, schema: Any) -> str:
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return "one of: " + ", ".join(self.describe(branch) for branch in schema)
        if isinstance(schema, str):
            return {
                "null": "null",
                "boolean": "a boolean",
                "int": "an int (32-bit integer)",
                "long": "a long (64-bit integer)",
                "float": "a float (number)",
                "double": "a double (number)",
                "bytes": "bytes",
                "string": "a string",
            }.get(schema, f"the type {schema}")
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical and kind in _PRIMITIVES:
            return f"{self.describe(kind)} ({logical})"
        name = schema.get("name", "")
        if kind == "enum":
            symbols = ", ".join(schema.get("symbols", []))
            return f"one of the symbols {symbols} (enum {name})"
        if kind == "fixed":
            return f"{schema.get('size')} bytes (fixed {name})"
        if kind == "array":
            return f"an array of {self._plural(schema.get('items'))}"
        if kind == "map":
            return f"a map (object) of {self._plural(schema.get('values'))}"
        if kind in ("record", "error"):
            fields = ", ".join(field["name"] for field in schema.get("fields", []))
            return f"a record {name} (an object with fields {fields})"
        return f"the type {kind}"

    def _plural(self, schema: Any) -> str:
        text = self.describe(schema)
        for article in ("a ", "an "):
            if text.startswith(article):
                return text[len(article):] + " items"
        return text

    # ------------------------------------------------------------------ checking

    def check(self, schema: Any, value: Any, path: list[str | int]) -> Mismatch | None:
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return self._union(schema, value, path)
        if isinstance(schema, str):
            if self._primitive(schema, value, None):
                return None
            return self._mismatch(schema, value, path)
        kind = schema.get("type")
        if kind in _PRIMITIVES:
            if self._primitive(kind, value, schema.get("logicalType")):
                return None
            return self._mismatch(schema, value, path)
        if kind == "enum":
            if isinstance(value, str) and value in schema.get("symbols", []):
                return None
            return self._mismatch(schema, value, path)
        if kind == "fixed":
            if self._json and isinstance(value, str) and len(value) == schema.get("size"):
                return None
            if isinstance(value, bytes | bytearray) and len(value) == schema.get("size"):
                return None
            if schema.get("logicalType") == "decimal" and isinstance(value, decimal.Decimal):
                return None
            return self._mismatch(schema, value, path)
        if kind == "array":
            if not isinstance(value, list | tuple):
                return self._mismatch(schema, value, path)
            for index, item in enumerate(value):
                found = self.check(schema.get("items"), item, [*path, index])
                if found:
                    return found
            return None
        if kind == "map":
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                return self._mismatch(schema, value, path)
            for key, item in value.items():
                found = self.check(schema.get("values"), item, [*path, f"[{json.dumps(key)}]"])
                if found:
                    return found
            return None
        if kind in ("record", "error"):
            return self._record(schema, value, path)
        return Mismatch(path=_render(path), expected=f"the type {kind}",
                        got=describe_value(value))

    def _record(self, schema: Any, value: Any, path: list[str | int]) -> Mismatch | None:
        if not isinstance(value, Mapping):
            return self._mismatch(schema, value, path)
        fields = schema.get("fields", [])
        for field in fields:
            name = field["name"]
            if name in value:
                found = self.check(field["type"], value[name], [*path, name])
                if found:
                    return found
            elif "default" not in field:
                return Mismatch(
                    path=_render([*path, name]),
                    expected=self.describe(field["type"]) + " (the field is required: it has "
                    "no default)",
                    got="nothing (the field is missing)",
                )
        known = {field["name"] for field in fields}
        for key in value:
            if key not in known:
                names = ", ".join(sorted(known)) or "none"
                return Mismatch(
                    path=_render([*path, str(key)]),
                    expected=f"no such field (record {schema.get('name')} has fields {names})",
                    got=describe_value(value[key]),
                )
        return None

    def _union(self, branches: list[Any], value: Any, path: list[str | int]) -> Mismatch | None:
        if self._json:
            # A default fits a union only through its first branch (Avro specification).
            return self.check(branches[0], value, path) if branches else None
        if any(self.check(branch, value, path) is None for branch in branches):
            return None
        # No branch fits. When the value's shape picks out one branch (an object for the only
        # record), the error inside that branch names the field at fault; otherwise list them.
        shaped = [branch for branch in branches if self._same_shape(branch, value)]
        if len(shaped) == 1:
            return self.check(shaped[0], value, path)
        return self._mismatch(branches, value, path)

    def _same_shape(self, schema: Any, value: Any) -> bool:
        schema = self.resolve(schema)
        kind = schema if isinstance(schema, str) else (
            "union" if isinstance(schema, list) else schema.get("type"))
        if isinstance(value, Mapping):
            return kind in ("record", "error", "map")
        if isinstance(value, list | tuple):
            return kind == "array"
        return False

    def _primitive(self, kind: str, value: Any, logical: str | None) -> bool:
        if logical and self._logical(logical, value):
            return True
        if kind == "null":
            return value is None
        if kind == "boolean":
            return isinstance(value, bool)
        if kind in ("int", "long"):
            low, high = _INT32 if kind == "int" else _INT64
            return isinstance(value, int) and not isinstance(value, bool) and (
                low <= value <= high)
        if kind in ("float", "double"):
            return isinstance(value, int | float) and not isinstance(value, bool)
        if kind == "string":
            return isinstance(value, str)
        if kind == "bytes":
            return isinstance(value, bytes | bytearray) or (self._json and isinstance(value, str))
        return False

    def _logical(self, logical: str, value: Any) -> bool:
        if self._json:
            return False
        if logical in ("timestamp-millis", "timestamp-micros", "local-timestamp-millis",
                       "local-timestamp-micros"):
            return isinstance(value, datetime.datetime)
        if logical == "date":
            return isinstance(value, datetime.date) and not isinstance(value, datetime.datetime)
        if logical in ("time-millis", "time-micros"):
            return isinstance(value, datetime.time)
        if logical == "decimal":
            return isinstance(value, decimal.Decimal)
        if logical == "uuid":
            return isinstance(value, uuid.UUID)
        return False

    def _mismatch(self, schema: Any, value: Any, path: list[str | int]) -> Mismatch:
        return Mismatch(path=_render(path), expected=self.describe(schema),
                        got=describe_value(value))
