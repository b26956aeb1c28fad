"""Avro schema compatibility: can a reader schema read what a writer schema wrote?

The rules are Avro's schema resolution (the specification's "Schema Resolution" section), in the
shape of the Java reference implementation's ``SchemaCompatibility`` that Confluent's registry
runs:

- same primitive types match; ``int`` is promoted to ``long``, ``float``, ``double``; ``long`` to
  ``float``, ``double``; ``float`` to ``double``; ``string`` and ``bytes`` read each other;
- records match by unqualified name (or a reader alias naming the writer); every reader field
  is read from the writer field of the same name (or a reader field alias), and a reader field
  the writer lacks needs a default. Writer fields the reader lacks are skipped;
- enums match by name and the reader has every writer symbol, unless it declares a default;
- fixed match by name and size; arrays by items; maps by values;
- a writer union is readable when each of its branches is; a reader union reads a non-union
  writer when one of its branches does;
- named types may be recursive: a pair already being compared counts as compatible.

Apache Avro's Python package has a port of the Java checker, but it merges its findings into
sets, losing which message belongs to which location; this module keeps each finding whole and
is cross-checked against that port in the tests.

Compatibility *levels* are Confluent's: BACKWARD means the new schema reads data written with
the latest version (new = reader), FORWARD that the latest reads data written with the new one,
FULL both; the ``_TRANSITIVE`` variants check every live version instead of the latest.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.registry._errors import InvalidCompatibilityLevelError
from services.registry._schema import AvroSchema
from services.registry._validate import describe_type

_PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
# reader type -> writer types it can read besides its own (Avro's promotions).
_PROMOTIONS: Mapping[str, frozenset[str]] = {
    "long": frozenset({"int"}),
    "float": frozenset({"int", "long"}),
    "double": frozenset({"int", "long", "float"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


class CompatibilityLevel(enum.StrEnum):
    """Which earlier versions a new schema must be compatible with, and in which direction."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, text: object) -> CompatibilityLevel:
        """The level named by ``text``, in any case; raises InvalidCompatibilityLevelError."""
        if isinstance(text, str):
            try:
                return cls(text.upper())
            except ValueError:
                pass
        raise InvalidCompatibilityLevelError(
            f"Invalid compatibility level {text!r}. Valid values are none, backward, forward, "
            "full, backward_transitive, forward_transitive, and full_transitive"
        )

    @property
    def backward(self) -> bool:
        """The new schema must read data written with earlier versions."""
        return self in (CompatibilityLevel.BACKWARD, CompatibilityLevel.BACKWARD_TRANSITIVE,
                        CompatibilityLevel.FULL, CompatibilityLevel.FULL_TRANSITIVE)

    @property
    def forward(self) -> bool:
        """Earlier versions must read data written with the new schema."""
        return self in (CompatibilityLevel.FORWARD, CompatibilityLevel.FORWARD_TRANSITIVE,
                        CompatibilityLevel.FULL, CompatibilityLevel.FULL_TRANSITIVE)

    @property
    def transitive(self) -> bool:
        """Every earlier live version counts, not only the latest."""
        return self.value.endswith("_TRANSITIVE")


DEFAULT_LEVEL = CompatibilityLevel.BACKWARD


@dataclass(frozen=True, kw_only=True, slots=True)
class Incompatibility:
    """One reason a reader schema cannot read what a writer schema wrote.

    ``kind`` is Confluent's error type (``READER_FIELD_MISSING_DEFAULT_VALUE``, ``TYPE_MISMATCH``,
    ``MISSING_UNION_BRANCH``, ``MISSING_ENUM_SYMBOLS``, ``NAME_MISMATCH``,
    ``FIXED_SIZE_MISMATCH``); ``pointer`` a JSON pointer into the reader schema; ``field`` the
    dotted field path (empty at the root).
    """

    kind: str
    pointer: str
    field: str
    template: str

    def describe(self, *, reader: str = "the reader schema",
                 writer: str = "the writer schema") -> str:
        """The finding in words, naming the two schemas as ``reader`` and ``writer``."""
        where = f"field {self.field!r}" if self.field else "the root"
        text = self.template.format(reader=reader, writer=writer, where=where)
        return f"{text} (at {self.pointer})"

    @property
    def message(self) -> str:
        """The finding in words, with the schemas called reader and writer."""
        return self.describe()


def incompatibilities(*, reader: AvroSchema, writer: AvroSchema) -> list[Incompatibility]:
    """Every reason ``reader`` cannot read data written with ``writer``; empty if it can."""
    found = _Checker(reader.named, writer.named).check(reader.parsed, writer.parsed, "", [])
    # A named pair referenced twice reports its (memoized) findings once.
    return list(dict.fromkeys(found))


def can_read(*, reader: AvroSchema, writer: AvroSchema) -> bool:
    """Whether ``reader`` reads everything ``writer`` writes."""
    return not incompatibilities(reader=reader, writer=writer)


def check_compatibility(
    new: AvroSchema,
    previous: Sequence[tuple[int, AvroSchema]],
    level: CompatibilityLevel,
) -> list[str]:
    """Why ``new`` breaks ``level`` against ``previous`` (``(version, schema)``, oldest first).

    Empty when it does not. Non-transitive levels compare with the last entry only.
    """
    if level is CompatibilityLevel.NONE or not previous:
        return []
    targets = previous if level.transitive else previous[-1:]
    messages: list[str] = []
    for version, old in reversed(targets):
        old_name = f"the old schema (version {version})"
        if level.backward:
            for found in incompatibilities(reader=new, writer=old):
                messages.append(f"{found.kind}: " + found.describe(
                    reader="the new schema", writer=old_name))
        if level.forward:
            for found in incompatibilities(reader=old, writer=new):
                messages.append(f"{found.kind}: " + found.describe(
                    reader=old_name, writer="the new schema"))
    return messages


class _Checker:
    def __init__(self, reader_named: Mapping[str, Any], writer_named: Mapping[str, Any]) -> None:
        self._reader_named = reader_named
        self._writer_named = writer_named
        # Findings per pair of named types; None while the pair is being compared, so a
        # recursive reference back to it counts as compatible (as in Java's checker).
        self._memo: dict[tuple[str, str], list[Incompatibility] | None] = {}

    def check(
        self, reader: Any, writer: Any, pointer: str, field: list[str]
    ) -> list[Incompatibility]:
        reader = _resolve(reader, self._reader_named)
        writer = _resolve(writer, self._writer_named)
        reader_type, writer_type = _type(reader), _type(writer)
        if reader_type in ("record", "enum", "fixed") and reader_type == writer_type:
            pair = (str(reader["name"]), str(writer["name"]))
            if pair in self._memo:
                return list(self._memo[pair] or ())
            self._memo[pair] = None
            result = self._same_type(reader, writer, reader_type, pointer, field)
            self._memo[pair] = result
            return result
        if writer_type == "union":
            found: list[Incompatibility] = []
            for index, branch in enumerate(writer):
                if reader_type == "union":
                    if self.check(reader, branch, pointer, field):
                        found.append(self._finding(
                            "MISSING_UNION_BRANCH", f"{pointer}/{index}", field,
                            "the union at {where} in {reader} has no branch that reads "
                            + _words(branch, self._writer_named) + " written by {writer}"))
                else:
                    found.extend(self.check(reader, branch, pointer, field))
            return found
        if reader_type == "union":
            if any(not self.check(branch, writer, pointer, field) for branch in reader):
                return []
            return [self._finding(
                "MISSING_UNION_BRANCH", pointer, field,
                "the union at {where} in {reader} has no branch that reads "
                + _words(writer, self._writer_named) + " written by {writer}")]
        if reader_type != writer_type:
            if writer_type in _PROMOTIONS.get(reader_type, frozenset()):
                return []
            return [self._finding(
                "TYPE_MISMATCH", pointer, field,
                "{where} is " + _words(reader, self._reader_named) + " in {reader} but "
                + _words(writer, self._writer_named) + " in {writer}, which it cannot read")]
        return self._same_type(reader, writer, reader_type, pointer, field)

    def _same_type(
        self, reader: Any, writer: Any, reader_type: str, pointer: str, field: list[str]
    ) -> list[Incompatibility]:
        if reader_type in _PRIMITIVES:
            return []
        if reader_type == "array":
            return self.check(reader["items"], writer["items"], pointer + "/items",
                              [*field, "[]"])
        if reader_type == "map":
            return self.check(reader["values"], writer["values"], pointer + "/values",
                              [*field, "{}"])
        names = self._names(reader, writer, pointer, field)
        if names:
            return names
        if reader_type == "fixed":
            if reader["size"] != writer["size"]:
                return [self._finding(
                    "FIXED_SIZE_MISMATCH", pointer + "/size", field,
                    f"fixed {reader['name']} at {{where}} is {reader['size']} bytes in {{reader}} "
                    f"but {writer['size']} bytes in {{writer}}")]
            return []
        if reader_type == "enum":
            missing = [s for s in writer["symbols"] if s not in set(reader["symbols"])]
            if missing and "default" not in reader:
                symbols = ", ".join(missing)
                return [self._finding(
                    "MISSING_ENUM_SYMBOLS", pointer + "/symbols", field,
                    f"enum {reader['name']} at {{where}} in {{reader}} lacks the symbols "
                    f"{symbols} of {{writer}}; add them, or give the enum a default symbol")]
            return []
        return self._record(reader, writer, pointer, field)

    def _record(
        self, reader: Mapping[str, Any], writer: Mapping[str, Any], pointer: str,
        field: list[str],
    ) -> list[Incompatibility]:
        writer_fields = {item["name"]: item for item in writer.get("fields", [])}
        found: list[Incompatibility] = []
        for index, item in enumerate(reader.get("fields", [])):
            here = f"{pointer}/fields/{index}"
            source = writer_fields.get(item["name"])
            if source is None:
                for alias in item.get("aliases", []):
                    source = writer_fields.get(alias)
                    if source is not None:
                        break
            if source is None:
                if "default" not in item:
                    found.append(self._finding(
                        "READER_FIELD_MISSING_DEFAULT_VALUE", here, [*field, item["name"]],
                        "{where} is in {reader} without a default and missing from {writer}; "
                        "give it a default"))
                continue
            found.extend(self.check(item["type"], source["type"], here + "/type",
                                    [*field, item["name"]]))
        return found

    def _names(
        self, reader: Mapping[str, Any], writer: Mapping[str, Any], pointer: str,
        field: list[str],
    ) -> list[Incompatibility]:
        reader_name, writer_name = str(reader["name"]), str(writer["name"])
        if _short(reader_name) == _short(writer_name):
            return []
        namespace = reader_name.rpartition(".")[0]
        aliases = {alias if "." in alias or not namespace else f"{namespace}.{alias}"
                   for alias in reader.get("aliases", [])}
        if writer_name in aliases:
            return []
        return [self._finding(
            "NAME_MISMATCH", pointer + "/name", field,
            f"the type at {{where}} is named {reader_name} in {{reader}} but {writer_name} in "
            f"{{writer}}; keep the name, or list {writer_name!r} in its aliases")]

    @staticmethod
    def _finding(kind: str, pointer: str, field: list[str], template: str) -> Incompatibility:
        path = ""
        for part in field:
            path += part if part in ("[]", "{}") or not path else "." + part
        return Incompatibility(kind=kind, pointer=pointer or "/", field=path, template=template)


def _resolve(schema: Any, named: Mapping[str, Any]) -> Any:
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        return named.get(schema, schema)
    if isinstance(schema, dict) and isinstance(schema.get("type"), str):
        kind = schema["type"]
        if kind in _PRIMITIVES:
            return kind  # logical types do not change what can be read (as in Java)
        if kind not in ("record", "error", "enum", "fixed", "array", "map"):
            return named.get(kind, kind)
    return schema


def _type(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    kind = str(schema.get("type"))
    return "record" if kind == "error" else kind


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _words(schema: Any, named: Mapping[str, Any]) -> str:
    # Braces would be read as format fields by Incompatibility.describe.
    return describe_type(schema, named).replace("{", "{{").replace("}", "}}")
