"""The Durable Streams HTTP protocol: one handler per method on ``/v1/stream/<path>``."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from services.streams._cursor import next_cursor
from services.streams._errors import (
    BadStreamRequestError,
    PayloadTooLargeError,
    StreamRequestError,
)
from services.streams._headers import (
    expiry,
    flag,
    fork_request,
    is_text,
    json_messages,
    producer_claim,
    read_query,
)
from services.streams._model import StreamMeta, media_type
from services.streams._offsets import BEGINNING, NOW, format_offset, parse_offset
from services.streams._store import AppendRequest, ReadResult, StreamStore

STREAM_PREFIX = "/v1/stream"
MAX_BODY_BYTES = 16 * 1024 * 1024
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, kw_only=True, slots=True)
class ProtocolOptions:
    long_poll_timeout: float = 30.0
    sse_lifetime: float = 60.0
    private: bool = False  # responses may be user-specific (a secret is configured)


class StreamsProtocol:
    """Serves the protocol's operations from a :class:`StreamStore`."""

    def __init__(self, store: StreamStore, options: ProtocolOptions) -> None:
        self._store = store
        self._options = options

    async def handle(self, request: Request, path: str) -> Response:
        """Answer one protocol request on the stream at ``path`` (``/a/b``)."""
        method = request.method
        if method == "PUT":
            return await self._create(request, path)
        if method == "POST":
            return await self._append(request, path)
        if method in ("GET", "HEAD"):
            if method == "HEAD":
                return await self._head(path)
            return await self._read(request, path)
        if method == "DELETE":
            await self._store.delete(path)
            return Response(status_code=204)
        return Response(status_code=405, headers={"Allow": "GET, HEAD, PUT, POST, DELETE"})

    # ------------------------------------------------------------------ writes

    async def _create(self, request: Request, path: str) -> Response:
        headers = request.headers
        fork = fork_request(headers, prefix=STREAM_PREFIX)
        expires = expiry(headers)
        content_type = headers.get("content-type")
        closed = flag(headers, "stream-closed")
        body = await _body(request)
        if fork is None and content_type is None:
            content_type = "application/octet-stream"
        data: bytes | None = body or None
        json_mode = media_type(content_type or "") == "application/json"
        if fork is not None and content_type is None and body:
            source_meta, _ = await self._store.head(fork.source)
            json_mode = source_meta.is_json
        if body and json_mode:
            data = json_messages(body, allow_empty=True)
        created, meta, tail = await self._store.create(
            path, content_type=content_type, ttl_seconds=expires.ttl_seconds,
            expires_at=expires.expires_at, closed=closed, data=data,
            fork=(fork.source, fork.offset, fork.sub_offset) if fork else None,
        )
        out = {"Content-Type": meta.content_type, "Stream-Next-Offset": format_offset(tail)}
        if meta.closed:
            out["Stream-Closed"] = "true"
        if created:
            out["Location"] = str(request.url.replace(query=None))
        return Response(status_code=201 if created else 200, headers=out)

    async def _append(self, request: Request, path: str) -> Response:
        headers = request.headers
        close = flag(headers, "stream-closed")
        claim = producer_claim(headers)
        body = await _body(request)
        content_type = headers.get("content-type")
        data: bytes | None = None
        if body or not close:
            # One lookup: the stream must exist before the request is judged (404 beats 400).
            meta, _tail = await self._store.head(path)
            if not body:
                raise BadStreamRequestError("an append needs a body (or Stream-Closed: true)")
            if content_type is None:
                raise BadStreamRequestError("an append with a body needs a Content-Type")
            if meta.is_json and media_type(content_type) == "application/json":
                data = json_messages(body, allow_empty=False)
            else:
                data = body
        result = await self._store.append(path, AppendRequest(
            data=data, content_type=content_type if body else None, close=close,
            stream_seq=headers.get("stream-seq"), producer=claim,
        ))
        out = {"Stream-Next-Offset": format_offset(result.next_offset)}
        if result.closed:
            out["Stream-Closed"] = "true"
        if result.producer_epoch is not None:
            out["Producer-Epoch"] = str(result.producer_epoch)
            out["Producer-Seq"] = str(result.producer_seq)
        # 200 only when a producer's append stored new data; everything else is 204.
        status = 200 if claim is not None and data and not result.duplicate else 204
        return Response(status_code=status, headers=out)

    # ------------------------------------------------------------------ reads

    async def _head(self, path: str) -> Response:
        meta, tail = await self._store.head(path)
        out = {"Content-Type": meta.content_type, "Stream-Next-Offset": format_offset(tail),
               "Cache-Control": "no-store"}
        if meta.ttl_seconds is not None:
            out["Stream-TTL"] = str(meta.ttl_seconds)
        if meta.expires_at is not None:
            out["Stream-Expires-At"] = meta.expires_at
        if meta.closed:
            out["Stream-Closed"] = "true"
        return Response(status_code=200, headers=out)

    async def _read(self, request: Request, path: str) -> Response:
        query = read_query(request.query_params)
        if query.live == "sse":
            return await self._sse(path, query.offset, query.cursor)
        if query.offset == NOW:
            meta, tail = await self._store.head(path, touch=True)
            if query.live == "long-poll" and not meta.closed:
                return await self._long_poll(path, tail, query.cursor)
            return self._now_response(meta, tail, query.live)
        start = 0 if query.offset == BEGINNING else parse_offset(query.offset)
        assert start is not None
        chunk = await self._store.read(path, start)
        if query.live == "long-poll" and not chunk.values:
            if chunk.closed:
                return Response(status_code=204, headers={
                    "Stream-Next-Offset": format_offset(chunk.next_offset),
                    "Stream-Up-To-Date": "true", "Stream-Closed": "true",
                    "Cache-Control": "no-store"})
            return await self._long_poll(path, chunk.next_offset, query.cursor)
        return self._chunk_response(request, chunk, cursor=(
            next_cursor(query.cursor) if query.live else None))

    def _now_response(self, meta: StreamMeta, tail: int, live: str | None) -> Response:
        out = {"Stream-Next-Offset": format_offset(tail), "Stream-Up-To-Date": "true",
               "Cache-Control": "no-store", "Content-Type": meta.content_type}
        if meta.closed:
            out["Stream-Closed"] = "true"
        if live == "long-poll":
            return Response(status_code=204, headers=out)
        return Response(b"[]" if meta.is_json else b"", status_code=200, headers=out)

    async def _long_poll(self, path: str, offset: int, cursor: str | None) -> Response:
        arrived = await self._store.wait(path, offset, self._options.long_poll_timeout)
        chunk = await self._store.read(path, offset, recent_ok=True)
        if not arrived or not chunk.values:
            out = {"Stream-Next-Offset": format_offset(chunk.next_offset),
                   "Stream-Up-To-Date": "true", "Cache-Control": "no-store"}
            if chunk.closed:
                out["Stream-Closed"] = "true"
            else:
                out["Stream-Cursor"] = next_cursor(cursor)
            return Response(status_code=204, headers=out)
        return self._chunk_response(None, chunk, cursor=next_cursor(cursor))

    def _chunk_response(
        self, request: Request | None, chunk: ReadResult, *, cursor: str | None
    ) -> Response:
        meta = chunk.meta
        end = format_offset(chunk.next_offset)
        etag = f'"{meta.incarnation}:{format_offset(chunk.start)}:{end}' + (
            ':c"' if chunk.closed else '"')
        out = {"Content-Type": meta.content_type, "Stream-Next-Offset": end, "ETag": etag,
               "Cache-Control": ("private" if self._options.private else "public")
               + ", max-age=60, stale-while-revalidate=300"}
        if chunk.up_to_date:
            out["Stream-Up-To-Date"] = "true"
        if chunk.closed:
            out["Stream-Closed"] = "true"
        elif cursor is not None:
            out["Stream-Cursor"] = cursor
        if request is not None and request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=out)
        return Response(_body_of(chunk), status_code=200, headers=out)

    async def _sse(self, path: str, offset_param: str, cursor: str | None) -> Response:
        meta, tail = await self._store.head(path, touch=True)
        if offset_param == NOW:
            start = tail
        elif offset_param == BEGINNING:
            start = 0
        else:
            parsed = parse_offset(offset_param)
            assert parsed is not None
            start = parsed
            await self._store.read(path, start, touch=False)  # 400 when past the tail
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                   "Connection": "keep-alive", "X-Accel-Buffering": "no"}
        if not is_text(meta.content_type):
            headers["Stream-SSE-Data-Encoding"] = "base64"
        return StreamingResponse(self._sse_events(path, start, cursor, binary=not is_text(
            meta.content_type)), status_code=200, headers=headers)

    async def _sse_events(
        self, path: str, offset: int, cursor: str | None, *, binary: bool
    ) -> AsyncIterator[bytes]:
        deadline = time.monotonic() + self._options.sse_lifetime
        sent_control = False
        while True:
            try:
                # After the first read, what this loop reads was just appended.
                chunk = await self._store.read(path, offset, recent_ok=sent_control)
            except StreamRequestError:
                return  # deleted or expired while streaming: end the event stream
            if chunk.values or not sent_control or chunk.closed:
                # A data event and its control event go out in one write, so a reader never
                # sees a data event without the offset that follows it.
                cursor = next_cursor(cursor)
                data = _sse_data(chunk, binary=binary) if chunk.values else b""
                yield data + _sse_control(chunk, cursor)
                sent_control = True
            offset = chunk.next_offset
            if chunk.closed:
                return
            if not chunk.up_to_date:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                await self._store.wait(path, offset, min(remaining, 15.0))
            except StreamRequestError:
                return


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"the body exceeds {MAX_BODY_BYTES} bytes")
    chunks = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLargeError(f"the body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(piece)
    return b"".join(chunks)


def _body_of(chunk: ReadResult) -> bytes:
    if chunk.meta.is_json:
        return b"[" + b",".join(v[1:-1] for v in chunk.values) + b"]"
    return b"".join(chunk.values)


def _sse_data(chunk: ReadResult, *, binary: bool) -> bytes:
    if binary:
        text = base64.b64encode(b"".join(chunk.values)).decode()
        lines = [text[i:i + 4096] for i in range(0, len(text), 4096)] or [""]
    else:
        text = _body_of(chunk).decode("utf-8", "replace")
        lines = _LINE_BREAK.split(text)
    # No space after "data:" unless the line itself starts with one (SSE strips one space).
    return ("event: data\n" + "".join(
        f"data: {line}\n" if line.startswith(" ") else f"data:{line}\n" for line in lines
    ) + "\n").encode()


def _sse_control(chunk: ReadResult, cursor: str) -> bytes:
    control: dict[str, object] = {"streamNextOffset": format_offset(chunk.next_offset)}
    if chunk.closed:
        control["streamClosed"] = True
        control["upToDate"] = True
    else:
        control["streamCursor"] = cursor
        if chunk.up_to_date:
            control["upToDate"] = True
    return ("event: control\ndata:" + json.dumps(control, separators=(",", ":"))
            + "\n\n").encode()
