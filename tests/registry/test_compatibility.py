"""Avro schema resolution: each rule, the compatibility levels, and Apache Avro as an oracle."""

from __future__ import annotations

import itertools
import json
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from services.registry import (
    AvroSchema,
    CompatibilityLevel,
    InvalidCompatibilityLevelError,
    can_read,
    check_compatibility,
    incompatibilities,
)
from tests.registry.conftest import record


def parse(schema: Any) -> AvroSchema:
    return AvroSchema.parse(json.dumps(schema))


def kinds(reader: Any, writer: Any) -> list[tuple[str, str, str]]:
    """(kind, field, pointer) of every finding when ``reader`` reads ``writer``'s data."""
    return [(found.kind, found.field, found.pointer)
            for found in incompatibilities(reader=parse(reader), writer=parse(writer))]


def reads(reader: Any, writer: Any) -> bool:
    return can_read(reader=parse(reader), writer=parse(writer))


def field(name: str, schema: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": schema, **extra}


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Status", "symbols": list(symbols), **extra}


def test_a_reader_field_missing_from_the_writer_needs_a_default() -> None:
    """A new field without a default cannot be read from old data; with one it can."""
    old = record("R", field("a", "int"))
    assert kinds(record("R", field("a", "int"), field("b", "string")), old) == [
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "b", "/fields/1")]
    assert reads(record("R", field("a", "int"), field("b", "string", default="")), old)


def test_writer_fields_the_reader_lacks_are_skipped() -> None:
    """A reader ignores fields it does not declare."""
    assert reads(record("R", field("a", "int")), record("R", field("a", "int"),
                                                        field("b", "string")))


@pytest.mark.parametrize(("reader", "writer"), [
    ("long", "int"), ("float", "int"), ("float", "long"), ("double", "int"),
    ("double", "long"), ("double", "float"), ("string", "bytes"), ("bytes", "string"),
])
def test_promotions_read_the_narrower_type(reader: str, writer: str) -> None:
    """int→long→float→double and string↔bytes are Avro's promotions."""
    assert reads(reader, writer)


@pytest.mark.parametrize(("reader", "writer"), [
    ("int", "long"), ("long", "float"), ("float", "double"), ("int", "string"),
    ("boolean", "int"), ("null", "string"), ("string", "int"),
])
def test_narrowing_and_unrelated_types_do_not_read(reader: str, writer: str) -> None:
    """No promotion narrows, and unrelated primitives are a TYPE_MISMATCH."""
    assert kinds(reader, writer) == [("TYPE_MISMATCH", "", "/")]


def test_enum_reader_needs_every_writer_symbol_unless_it_has_a_default() -> None:
    """Symbols the reader lacks break it; an enum default absorbs them; extra symbols are fine."""
    assert kinds(enum("A", "B"), enum("A", "B", "C")) == [
        ("MISSING_ENUM_SYMBOLS", "", "/symbols")]
    message = incompatibilities(reader=parse(enum("A")), writer=parse(enum("A", "C")))[0]
    assert "C" in message.message
    assert reads(enum("A", "B", default="A"), enum("A", "B", "C"))
    assert reads(enum("A", "B", "C"), enum("A", "B"))


def test_unions_on_either_side() -> None:
    """Every writer branch must be readable; a reader union needs one branch for a writer."""
    assert reads(["null", "string"], "string")
    assert reads(["null", "long"], "int")
    assert reads(["null", "string", "int"], ["string", "null"])
    assert kinds(["null", "string"], ["null", "string", "int"]) == [
        ("MISSING_UNION_BRANCH", "", "/2")]
    assert kinds(["null", "string"], "int") == [("MISSING_UNION_BRANCH", "", "/")]
    assert kinds("string", ["null", "string"]) == [("TYPE_MISMATCH", "", "/")]


def test_nested_records_report_the_field_path() -> None:
    """A problem deep inside names the dotted field path and a pointer into the reader."""
    inner_old = record("Headers", field("op", "string"))
    inner_new = record("Headers", field("op", "string"), field("txid", "string"))
    assert kinds(record("Event", field("headers", inner_new)),
                 record("Event", field("headers", inner_old))) == [
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "headers.txid", "/fields/0/type/fields/1")]


def test_arrays_and_maps_compare_their_items_and_values() -> None:
    """Items and values follow the same rules, promotions included."""
    assert reads({"type": "array", "items": "long"}, {"type": "array", "items": "int"})
    assert kinds(record("R", field("tags", {"type": "array", "items": "int"})),
                 record("R", field("tags", {"type": "array", "items": "long"}))) == [
        ("TYPE_MISMATCH", "tags[]", "/fields/0/type/items")]
    assert kinds({"type": "map", "values": "int"}, {"type": "map", "values": "string"}) == [
        ("TYPE_MISMATCH", "{}", "/values")]
    assert kinds({"type": "array", "items": "int"}, {"type": "map", "values": "int"}) == [
        ("TYPE_MISMATCH", "", "/")]


def test_named_type_references_are_followed() -> None:
    """A type used again by name is compared where it is referenced, too."""
    point_old = record("Point", field("x", "int"))
    point_new = record("Point", field("x", "int"), field("y", "int"))
    old = record("Line", field("start", point_old), field("end", "test.Point"))
    new = record("Line", field("start", point_new), field("end", "test.Point"))
    assert [kind for kind, *_ in kinds(new, old)] == ["READER_FIELD_MISSING_DEFAULT_VALUE"]
    changed_end = record("Line", field("start", point_old),
                         field("end", record("Point2", field("x", "long"))))
    assert kinds(changed_end, old) == [("NAME_MISMATCH", "end", "/fields/1/type/name")]


def test_recursive_schemas_terminate() -> None:
    """A linked list compares to itself and to a widened version without looping."""
    def linked(value: str) -> dict[str, Any]:
        return record("Node", field("value", value),
                      field("next", ["null", "test.Node"], default=None))

    assert reads(linked("long"), linked("int"))
    assert kinds(linked("int"), linked("long")) == [("TYPE_MISMATCH", "value", "/fields/0/type")]


def test_names_aliases_and_fixed_sizes() -> None:
    """Named types match by unqualified name or reader alias; fixed sizes must match."""
    assert kinds(record("A", field("x", "int")), record("B", field("x", "int"))) == [
        ("NAME_MISMATCH", "", "/name")]
    renamed = {**record("B", field("x", "int")), "aliases": ["A"]}
    assert reads(renamed, record("A", field("x", "int")))
    assert reads(record("R", field("x", "int"), namespace="one"),
                 record("R", field("x", "int"), namespace="two"))
    fixed = {"type": "fixed", "name": "Hash", "size": 16}
    assert kinds(fixed, {**fixed, "size": 32}) == [("FIXED_SIZE_MISMATCH", "", "/size")]


def test_field_aliases_read_renamed_fields() -> None:
    """A reader field reads the writer field one of its aliases names."""
    assert reads(record("R", field("full_name", "string", aliases=["name"])),
                 record("R", field("name", "string")))


def test_logical_types_do_not_change_what_reads() -> None:
    """timestamp-millis is a long for resolution, as in Avro's Java checker."""
    assert reads({"type": "long", "logicalType": "timestamp-millis"}, "int")
    assert reads("long", {"type": "long", "logicalType": "timestamp-millis"})
    # An unknown or invalid logical type is its underlying type (and not a warning-as-error).
    assert reads({"type": "bytes", "logicalType": "decimal"}, "string")


def test_levels_choose_direction_and_history() -> None:
    """BACKWARD: new reads old; FORWARD: old reads new; FULL both; TRANSITIVE: all versions."""
    v1 = parse(record("R", field("a", "int")))
    v2 = parse(record("R", field("a", "int"), field("b", "string", default="")))
    required_b = parse(record("R", field("b", "string")))
    history = [(1, v1), (2, v2)]
    assert check_compatibility(required_b, history, CompatibilityLevel.BACKWARD) == []
    transitive = check_compatibility(required_b, history, CompatibilityLevel.BACKWARD_TRANSITIVE)
    assert len(transitive) == 1
    assert "version 1" in transitive[0]
    assert "'b'" in transitive[0]
    dropped_a = parse(record("R"))
    assert check_compatibility(dropped_a, [(1, v1)], CompatibilityLevel.BACKWARD) == []
    forward = check_compatibility(dropped_a, [(1, v1)], CompatibilityLevel.FORWARD)
    assert forward
    assert forward[0].startswith("READER_FIELD_MISSING_DEFAULT_VALUE")
    assert "old schema (version 1)" in forward[0]
    assert check_compatibility(dropped_a, [(1, v1)], CompatibilityLevel.FULL) == forward
    assert check_compatibility(v2, [(1, v1)], CompatibilityLevel.FULL_TRANSITIVE) == []
    assert check_compatibility(parse("string"), history, CompatibilityLevel.NONE) == []
    assert check_compatibility(required_b, [], CompatibilityLevel.FULL_TRANSITIVE) == []


def test_level_names_parse_in_any_case() -> None:
    """Levels parse case-insensitively; anything else is InvalidCompatibilityLevelError."""
    assert CompatibilityLevel.parse("full_transitive") is CompatibilityLevel.FULL_TRANSITIVE
    assert CompatibilityLevel.FULL.backward
    assert CompatibilityLevel.FULL.forward
    assert not CompatibilityLevel.FORWARD.backward
    assert CompatibilityLevel.FORWARD_TRANSITIVE.transitive
    with pytest.raises(InvalidCompatibilityLevelError):
        CompatibilityLevel.parse("sideways")


CORPUS: list[Any] = [
    "int", "long", "float", "double", "string", "bytes", "null", "boolean",
    ["null", "string"], ["null", "int"], ["null", "long", "string"], ["int", "string"],
    {"type": "array", "items": "int"}, {"type": "array", "items": "long"},
    {"type": "map", "values": "string"}, {"type": "map", "values": "bytes"},
    enum("A", "B"), enum("A", "B", "C"), enum("A", "B", default="A"),
    {"type": "fixed", "name": "Hash", "size": 4}, {"type": "fixed", "name": "Hash", "size": 8},
    record("R", field("a", "int")),
    record("R", field("a", "long")),
    record("R", field("a", "int"), field("b", "string")),
    record("R", field("a", "int"), field("b", "string", default="x")),
    record("R", field("b", ["null", "string"], default=None)),
    record("R", field("a", "int"), field("h", record("H", field("x", "int")))),
    record("R", field("a", "int"), field("h", record("H", field("x", "double")))),
    record("R", field("a", "int"), field("h", ["null", record("H", field("x", "int"))],
                                         default=None)),
    record("S", field("a", "int")),
    record("Node", field("v", "int"), field("next", ["null", "test.Node"], default=None)),
    record("Node", field("v", "long"), field("next", ["null", "test.Node"], default=None)),
]


def test_verdicts_agree_with_apache_avros_checker() -> None:
    """For every ordered pair of a varied corpus, can_read matches Apache Avro's port of Java."""
    disagreements = []
    for reader, writer in itertools.product(CORPUS, repeat=2):
        checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
        oracle = checker.get_compatibility(
            avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer)))
        expected = oracle.compatibility is SchemaCompatibilityType.compatible
        if reads(reader, writer) != expected:
            disagreements.append((reader, writer, expected))
    assert disagreements == []
