"""The Kafka wire: frames in, responses out, one connection at a time.

Each connection reads size-prefixed request frames, decodes the request header, and runs the
handler for the API in a task of the connection's own ``TaskGroup``. Responses are written in
request order, as Kafka requires, while later requests of the same connection are already being
handled — so a pipelining producer is not held up by the fsync of its previous batch.
A malformed frame closes that one connection with a logged reason; an unknown API or version
is answered with UNSUPPORTED_VERSION and the connection stays open.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from io import BytesIO

from aiokafka.protocol.types import TaggedFields

from services.log import _codec
from services.log._apis import API_VERSIONS, SCHEMAS, ApiKey
from services.log._errors import ErrorCode

log = logging.getLogger("netscript.log")

MAX_FRAME_BYTES = 100 * 1024 * 1024
# How many requests of one connection may be in flight before the reader waits.
MAX_IN_FLIGHT = 64

_HEADER = struct.Struct(">hhi")
_SIZE = struct.Struct(">i")


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestContext:
    """Who sent a request, and which API version it speaks."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str
    client_host: str


Handler = Callable[[RequestContext, _codec.Fields], Awaitable[_codec.Fields | None]]


class MalformedRequest(Exception):
    """A frame that cannot be a Kafka request; the connection is closed."""


def parse_header(frame: bytes) -> tuple[int, int, int, str, BytesIO]:
    """Split a request frame into (api_key, version, correlation_id, client_id, body)."""
    if len(frame) < _HEADER.size + 2:
        raise MalformedRequest(f"request of {len(frame)} bytes is shorter than a header")
    api_key, version, correlation_id = _HEADER.unpack_from(frame)
    (client_len,) = struct.unpack_from(">h", frame, _HEADER.size)
    pos = _HEADER.size + 2
    client_id = ""
    if client_len > 0:
        if pos + client_len > len(frame):
            raise MalformedRequest("client id runs past the end of the frame")
        client_id = frame[pos : pos + client_len].decode("utf-8", "replace")
        pos += client_len
    body = BytesIO(frame)
    body.seek(pos)
    schema = SCHEMAS.get((api_key, version))
    if schema is not None and schema.flexible:
        TaggedFields.decode(body)  # request header v2 ends in tagged fields
    return api_key, version, correlation_id, client_id, body


def unsupported_response(api_key: int, version: int) -> bytes:
    """The body answering a request the broker does not implement.

    For ApiVersions this is the v0 layout listing what is supported, so the client can retry
    with a version it shares with us (KIP-511). Other APIs get a bare UNSUPPORTED_VERSION code.
    """
    if api_key == ApiKey.API_VERSIONS:
        return _codec.encode(
            SCHEMAS[(ApiKey.API_VERSIONS, 0)].response,
            {
                "error_code": ErrorCode.UNSUPPORTED_VERSION,
                "api_versions": [
                    {"api_key": int(k), "min_version": lo, "max_version": hi}
                    for k, (lo, hi) in API_VERSIONS.items()
                ],
            },
        )
    return struct.pack(">h", ErrorCode.UNSUPPORTED_VERSION)


class Connection:
    """One client connection: reads requests, runs handlers, writes responses in order."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handlers: dict[int, Handler],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._handlers = handlers
        peer = writer.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._host = peer[0] if isinstance(peer, tuple) else ""

    async def serve(self) -> None:
        """Serve until the client disconnects or sends a malformed frame."""
        pending: asyncio.Queue[asyncio.Task[bytes | None] | None] = asyncio.Queue(MAX_IN_FLIGHT)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._write_responses(pending))
                try:
                    await self._read_requests(tasks, pending)
                finally:
                    await pending.put(None)
        except* (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except* MalformedRequest as group:
            log.warning("closing connection from %s: %s", self._peer, group.exceptions[0])
        except* Exception as group:  # a handler bug must not take the broker down
            log.error(
                "closing connection from %s after an internal error",
                self._peer,
                exc_info=group.exceptions[0],
            )
        finally:
            self._writer.close()

    async def _read_requests(
        self,
        tasks: asyncio.TaskGroup,
        pending: asyncio.Queue[asyncio.Task[bytes | None] | None],
    ) -> None:
        while True:
            try:
                size_bytes = await self._reader.readexactly(4)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise MalformedRequest("connection closed inside a frame size") from exc
                return
            (size,) = _SIZE.unpack(size_bytes)
            if size <= 0 or size > MAX_FRAME_BYTES:
                raise MalformedRequest(f"frame size {size} is outside 1..{MAX_FRAME_BYTES}")
            frame = await self._reader.readexactly(size)
            api_key, version, correlation_id, client_id, body = parse_header(frame)
            context = RequestContext(
                api_key=api_key,
                api_version=version,
                correlation_id=correlation_id,
                client_id=client_id,
                client_host=self._host,
            )
            await pending.put(tasks.create_task(self._handle(context, body)))

    async def _handle(self, context: RequestContext, body: BytesIO) -> bytes | None:
        header = _SIZE.pack(context.correlation_id)
        schema = SCHEMAS.get((context.api_key, context.api_version))
        handler = self._handlers.get(context.api_key)
        if schema is None or handler is None:
            log.info(
                "unsupported request api_key=%d version=%d from %s",
                context.api_key,
                context.api_version,
                self._peer,
            )
            return header + unsupported_response(context.api_key, context.api_version)
        try:
            request = _codec.decode(schema.request, body)
        except Exception as exc:
            raise MalformedRequest(
                f"cannot decode {ApiKey(context.api_key).name} v{context.api_version}: {exc}"
            ) from exc
        response = await handler(context, request)
        if response is None:
            return None
        if schema.flexible and context.api_key != ApiKey.API_VERSIONS:
            header += b"\x00"  # response header v1: empty tagged fields
        return header + _codec.encode(schema.response, response)

    async def _write_responses(
        self, pending: asyncio.Queue[asyncio.Task[bytes | None] | None]
    ) -> None:
        while (task := await pending.get()) is not None:
            payload = await task
            if payload is None:
                continue  # acks=0 produce: the client expects no answer
            self._writer.write(_SIZE.pack(len(payload)) + payload)
            if pending.empty():
                await self._writer.drain()
        await self._writer.drain()
