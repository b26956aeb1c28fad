"""The Avro codec in Confluent's wire format, and errors that name the field at fault."""

from __future__ import annotations

import datetime
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.kernel.testing import RunningServer
from services.log.testing import free_port
from services.registry import (
    AvroCodec,
    IncompatibleSchemaError,
    RegistryClient,
    RegistryUnavailableError,
    SchemaNotFoundError,
    SchemaValidationError,
    SubjectNotFoundError,
    WireFormatError,
    frame,
    is_framed,
    unframe,
)
from tests.registry.conftest import record

SCHEMAS = Path(__file__).parents[2] / "schemas"
CHANGE_EVENT = json.loads((SCHEMAS / "streams" / "ChangeEvent.avsc").read_text())

ORDER = record(
    "Order",
    {"name": "id", "type": "long"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    {"name": "lines", "type": {"type": "array", "items": record(
        "Line", {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"})}},
    {"name": "attributes", "type": {"type": "map", "values": "string"}, "default": {}},
    {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
)
GOOD_ORDER: dict[str, Any] = {
    "id": 7, "status": "NEW", "lines": [{"sku": "a-1", "qty": 2}], "attributes": {"gift": "yes"},
    "note": None, "placed_at": datetime.datetime(2025, 1, 15, 10, 30, tzinfo=datetime.UTC),
}


@pytest.fixture
async def client(registry_server: RunningServer) -> AsyncIterator[RegistryClient]:
    """A registry client with the order and change-event schemas registered."""
    async with RegistryClient(registry_server.url) as registry:
        await registry.register("orders-value", ORDER)
        await registry.register("changes-value", CHANGE_EVENT)
        yield registry


async def test_encode_frames_with_the_latest_id_and_decode_round_trips(
    client: RegistryClient,
) -> None:
    """encode writes magic byte 0, the 4-byte big-endian id and Avro; decode reads it back."""
    codec = AvroCodec(client)
    data = await codec.encode("orders-value", GOOD_ORDER)
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == 1
    assert is_framed(data)
    assert unframe(data)[0] == 1
    assert await codec.decode(data) == GOOD_ORDER
    change = {"type": "user", "key": "u1", "value": json.dumps({"name": "Ada"}),
              "headers": {"operation": "insert", "timestamp": "2025-01-15T10:30:00Z"}}
    decoded = await AvroCodec(client).decode(await codec.encode("changes-value", change))
    assert decoded == {**change, "old_value": None,
                       "headers": {**change["headers"], "txid": None}}


@pytest.mark.parametrize(("value", "field", "expected", "got"), [
    ({**GOOD_ORDER, "id": "seven"}, "id", "a long (64-bit integer)", "'seven' (str)"),
    ({**GOOD_ORDER, "status": "SHIPPED"}, "status", "one of the symbols NEW, PAID",
     "'SHIPPED'"),
    ({**GOOD_ORDER, "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 1.5}]},
     "lines[1].qty", "an int (32-bit integer)", "1.5 (float)"),
    ({**GOOD_ORDER, "lines": [{"sku": "a"}]}, "lines[0].qty", "the field is required",
     "missing"),
    ({**GOOD_ORDER, "attributes": {"gift": 1}}, 'attributes["gift"]', "a string", "1 (int)"),
    ({**GOOD_ORDER, "note": 5}, "note", "one of: null, a string", "5 (int)"),
    ({**GOOD_ORDER, "colour": "red"}, "colour", "no such field", "'red'"),
    ({k: v for k, v in GOOD_ORDER.items() if k != "id"}, "id", "required", "missing"),
    ({**GOOD_ORDER, "id": 2**63}, "id", "a long", "int"),
    ([1, 2], "", "a record test.Order", "an array"),
])
async def test_a_value_that_does_not_fit_names_the_field_and_what_was_expected(
    client: RegistryClient, value: Any, field: str, expected: str, got: str,
) -> None:
    """SchemaValidationError carries the field path, the expectation and what was there."""
    with pytest.raises(SchemaValidationError) as raised:
        await AvroCodec(client).encode("orders-value", value)
    error = raised.value
    assert (error.field, error.subject, error.schema_id) == (field, "orders-value", 1)
    assert expected in error.expected
    assert got in error.got
    assert (f"field {field!r}" if field else "the value") in str(error)
    assert "register a schema that accepts it" in str(error)


async def test_a_nested_union_record_names_the_inner_field(client: RegistryClient) -> None:
    """A record inside a union reports the field inside it, not the whole union."""
    schema = record("Wrapper", {"name": "inner", "type": ["null", record(
        "Inner", {"name": "n", "type": "int"})], "default": None})
    await client.register("wrapper-value", schema)
    with pytest.raises(SchemaValidationError) as raised:
        await AvroCodec(client).encode("wrapper-value", {"inner": {"n": "x"}})
    assert raised.value.field == "inner.n"


async def test_the_codec_picks_up_a_new_latest_version(registry_server: RunningServer) -> None:
    """register() drops the cached latest, so the next encode uses the new version."""
    async with RegistryClient(registry_server.url, latest_ttl=3600) as registry:
        codec = AvroCodec(registry)
        await registry.register("v-value", record("V", {"name": "a", "type": "int"}))
        first = await codec.encode("v-value", {"a": 1})
        await registry.register("v-value", record(
            "V", {"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0}))
        second = await codec.encode("v-value", {"a": 1, "b": 2})
        assert (unframe(first)[0], unframe(second)[0]) == (1, 2)
        assert await codec.decode(first) == {"a": 1}
        with pytest.raises(IncompatibleSchemaError) as raised:
            await registry.register("v-value", record("V", {"name": "a", "type": "string"}))
        assert raised.value.status == 409


async def test_decode_refuses_bytes_that_are_not_framed_avro(client: RegistryClient) -> None:
    """Wrong magic, short data, unknown ids and trailing bytes raise clear errors."""
    codec = AvroCodec(client)
    good = await codec.encode("orders-value", GOOD_ORDER)
    with pytest.raises(WireFormatError, match="magic byte"):
        await codec.decode(b"\x01" + good[1:])
    with pytest.raises(WireFormatError, match="shorter"):
        await codec.decode(b"\x00\x00")
    with pytest.raises(WireFormatError, match="left after decoding"):
        await codec.decode(good + b"\x00\x00")
    with pytest.raises(WireFormatError, match="does not decode"):
        await codec.decode(good[:7])
    with pytest.raises(SchemaNotFoundError):
        await codec.decode(frame(99, b"\x02"))
    assert not is_framed(b'{"json": true}')


async def test_client_errors_are_typed(client: RegistryClient) -> None:
    """An unknown subject is SubjectNotFoundError; a dead registry RegistryUnavailableError."""
    with pytest.raises(SubjectNotFoundError) as raised:
        await AvroCodec(client).encode("nobody-value", {})
    assert (raised.value.error_code, raised.value.subject) == (40401, "nobody-value")
    async with RegistryClient(f"http://127.0.0.1:{free_port()}", timeout=2) as dead:
        with pytest.raises(RegistryUnavailableError, match="netscript registry serve"):
            await dead.latest("x")
