"""The broker's handling of raw frames: ApiVersions, unknown APIs, malformed input."""

from __future__ import annotations

import asyncio
import struct

from services.log import Broker
from services.log._apis import API_VERSIONS


async def _request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    api_key: int,
    version: int,
    body: bytes,
    *,
    flexible: bool = False,
    correlation_id: int = 7,
) -> bytes:
    client = b"test"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client)) + client
    if flexible:
        header += b"\x00"
    frame = header + body
    writer.write(struct.pack(">i", len(frame)) + frame)
    await writer.drain()
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    payload = await reader.readexactly(size)
    (got_correlation,) = struct.unpack_from(">i", payload)
    assert got_correlation == correlation_id
    return payload[4:]


async def _connect(broker: Broker) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = broker.bootstrap_servers.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


async def test_api_versions_v3_is_flexible_with_an_empty_tag_buffer(broker: Broker) -> None:
    """ApiVersions v3 lists every API and ends in a single 0x00 tagged-field byte."""
    reader, writer = await _connect(broker)
    body = b"\x05kcat\x041.7\x00"  # compact strings (length+1) and an empty tag buffer
    reply = await _request(reader, writer, 18, 3, body, flexible=True)
    writer.close()
    (error,) = struct.unpack_from(">h", reply)
    assert error == 0
    count, pos = _uvarint(reply, 2)
    advertised = {}
    for _ in range(count - 1):
        key, low, high = struct.unpack_from(">hhh", reply, pos)
        assert reply[pos + 6] == 0  # no tagged fields per entry
        advertised[key] = (low, high)
        pos += 7
    (throttle,) = struct.unpack_from(">i", reply, pos)
    assert throttle == 0
    assert reply[pos + 4 :] == b"\x00"
    assert advertised == {int(k): v for k, v in API_VERSIONS.items()}
    assert advertised[0] == (3, 8)
    assert advertised[1] == (4, 11)


async def test_newer_api_versions_gets_unsupported_version_with_the_v0_list(
    broker: Broker,
) -> None:
    """A client asking ApiVersions v9 learns UNSUPPORTED_VERSION and what we do support."""
    reader, writer = await _connect(broker)
    reply = await _request(reader, writer, 18, 9, b"")
    (error, count) = struct.unpack_from(">hi", reply)
    assert error == 35
    assert count == len(API_VERSIONS)
    # The connection survives: a supported request still works.
    reply = await _request(reader, writer, 18, 0, b"", correlation_id=8)
    assert struct.unpack_from(">h", reply)[0] == 0
    writer.close()


async def test_unknown_api_is_answered_and_the_connection_stays_open(broker: Broker) -> None:
    """An API the broker lacks (here 57) gets UNSUPPORTED_VERSION, not a dropped connection."""
    reader, writer = await _connect(broker)
    reply = await _request(reader, writer, 57, 0, b"")
    assert struct.unpack_from(">h", reply)[0] == 35
    reply = await _request(reader, writer, 18, 1, b"", correlation_id=9)
    assert struct.unpack_from(">h", reply)[0] == 0
    writer.close()


async def test_malformed_frame_closes_only_its_connection(broker: Broker) -> None:
    """A garbage frame ends that connection; another client is not disturbed."""
    good_reader, good_writer = await _connect(broker)
    bad_reader, bad_writer = await _connect(broker)
    # A Metadata v1 request whose topic array claims more entries than the frame holds.
    header = struct.pack(">hhih", 3, 1, 1, 0)
    frame = header + struct.pack(">i", 1000)
    bad_writer.write(struct.pack(">i", len(frame)) + frame)
    await bad_writer.drain()
    assert await asyncio.wait_for(bad_reader.read(), 10) == b""  # closed by the broker
    reply = await _request(good_reader, good_writer, 18, 1, b"")
    assert struct.unpack_from(">h", reply)[0] == 0
    good_writer.close()
    bad_writer.close()


async def test_negative_frame_size_closes_the_connection(broker: Broker) -> None:
    """A frame size outside the allowed range is rejected by closing the connection."""
    reader, writer = await _connect(broker)
    writer.write(struct.pack(">i", -5))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
