"""One Kafka request, one response, for APIs no Python client speaks (OffsetDelete,
DescribeCluster, Metadata by topic id). Requests are encoded with the broker's own schemas, so
these tests pin behaviour; wire compatibility is librdkafka's suite's job."""

from __future__ import annotations

import socket
import struct
from io import BytesIO
from typing import Any

from services.log import _codec
from services.log._apis import SCHEMAS


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def call(bootstrap: str, api_key: int, version: int, fields: dict[str, Any]) -> dict[str, Any]:
    """Send one request and return the decoded response body."""
    schema = SCHEMAS[(api_key, version)]
    client = b"raw-test"
    header = struct.pack(">hhih", api_key, version, 1, len(client)) + client
    if schema.flexible:
        header += b"\x00"  # request header v2: empty tagged fields
    frame = header + _codec.encode(schema.request, fields)
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", _recv(sock, 4))
        payload = _recv(sock, size)
    body = BytesIO(payload)
    (correlation_id,) = struct.unpack(">i", body.read(4))
    assert correlation_id == 1
    if schema.flexible:
        assert body.read(1) == b"\x00"  # response header v1: empty tagged fields
    response = _codec.decode(schema.response, body)
    assert body.read() == b"", "the response has bytes its schema does not describe"
    return response
