"""The producer: typed upserts and deletes written to a durable stream, exactly once.

``upsert``/``delete`` only enqueue (they never block); a background sender owned by the
producer batches the queue into POSTs carrying ``Producer-Id``/``-Epoch``/``-Seq``, so a batch
retried after a timeout is stored once. Each producer instance writes under a new epoch, so a
restarted producer with the same id fences its predecessor instead of being taken for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pydantic

from services.streams._errors import StreamsError, StreamWriteError
from services.streams._schema import StreamSchema
from services.streams._urls import build_stream_url, get_streams_auth

logger = logging.getLogger(__name__)

MAX_BATCH = 1000
MAX_ATTEMPTS = 6


class DurableStreamProducer:
    """Writes State-Protocol change events for one stream path (see ``create_durable_stream``)."""

    def __init__(
        self, *, stream_path: str, schema: StreamSchema, producer_id: str,
        base_url: str | None = None, headers: Mapping[str, str] | None = None,
    ) -> None:
        if not producer_id:
            raise ValueError("producer_id must be a stable, non-empty string")
        self._stream_path = "/" + stream_path.lstrip("/")
        self._schema = schema
        self._producer_id = producer_id
        self._url = build_stream_url(self._stream_path, base_url)
        self._headers = {**get_streams_auth(), **dict(headers or {})}
        self._queue: list[dict[str, Any]] = []
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()  # set once connected and nothing is queued or in flight
        self._sender: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._connected = False
        self._error: StreamsError | None = None
        self._closed = False
        # A new incarnation starts at a fresh epoch (wall-clock milliseconds), so its first
        # batches can never be mistaken for retries of the previous incarnation's.
        self._epoch = int(time.time() * 1000)
        self._seq = 0
        self._start_sender()

    @property
    def stream_path(self) -> str:
        """The stream path this producer owns."""
        return self._stream_path

    @property
    def closed(self) -> bool:
        """Whether shutdown has begun; later upserts and deletes are ignored."""
        return self._closed

    # ------------------------------------------------------------------ enqueue

    def upsert(self, entity_type: str, value: Mapping[str, Any] | pydantic.BaseModel) -> None:
        """Enqueue an upsert keyed by the collection's primary key.

        Skipped with a warning when the collection is unknown or the key is missing or empty;
        raises :class:`StreamSchemaError` when ``value`` does not fit the collection's schema.
        """
        if self._closed:
            logger.warning("producer for %s is closed; upsert ignored", self._stream_path)
            return
        collection = self._schema.by_type(entity_type)
        if collection is None:
            logger.warning("unknown collection %r for %s; upsert skipped", entity_type,
                           self._stream_path)
            return
        data = collection.validate(value)
        key = data.get(collection.primary_key)
        if key is None or key == "":
            logger.warning("%r value without %r; upsert skipped", entity_type,
                           collection.primary_key)
            return
        self._enqueue({"type": collection.type, "key": str(key), "value": data,
                       "headers": {"operation": "upsert", "timestamp": _now()}})

    def delete(self, entity_type: str, key: str) -> None:
        """Enqueue a delete of ``key``; skipped with a warning on an empty key."""
        if self._closed:
            logger.warning("producer for %s is closed; delete ignored", self._stream_path)
            return
        collection = self._schema.by_type(entity_type)
        if collection is None:
            logger.warning("unknown collection %r for %s; delete skipped", entity_type,
                           self._stream_path)
            return
        if not key:
            logger.warning("delete of %r with an empty key skipped", entity_type)
            return
        self._enqueue({"type": collection.type, "key": str(key),
                       "headers": {"operation": "delete", "timestamp": _now()}})

    def _enqueue(self, event: dict[str, Any]) -> None:
        self._queue.append(event)
        self._idle.clear()
        self._wakeup.set()
        self._start_sender()

    # ------------------------------------------------------------------ flush and close

    async def flush(self) -> None:
        """Wait until every enqueued event is stored.

        Raises :class:`StreamWriteError` when the server refused a batch or never answered
        (the connect error, if the producer never connected).
        """
        self._start_sender()
        while True:
            if self._error is not None:
                raise self._error
            if self._idle.is_set() and not self._queue:
                return
            wait = asyncio.ensure_future(self._idle.wait())
            sender = self._sender
            waiters: list[asyncio.Future[Any]] = [wait]
            if sender is not None:
                waiters.append(sender)
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            wait.cancel()
            if sender is not None and sender.done() and not sender.cancelled():
                failure = sender.exception()
                if failure is not None and self._error is None:
                    self._error = StreamWriteError(stream_path=self._stream_path,
                                                   reason=f"the sender failed: {failure!r}")

    async def close(self) -> None:
        """Flush, stop the sender and release this path's singleton (closing twice is fine)."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            _release(self)
            if self._sender is not None:
                self._sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sender
            if self._client is not None:
                await self._client.aclose()

    # ------------------------------------------------------------------ sending

    def _start_sender(self) -> None:
        if self._sender is not None and not self._sender.done():
            return
        if self._closed or self._error is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the first flush() starts the sender
        self._sender = loop.create_task(self._run(), name=f"stream-producer {self._url}")

    async def _run(self) -> None:
        self._client = self._client or httpx.AsyncClient(timeout=30.0)
        try:
            await self._connect()
            while not self._closed:
                if not self._queue:
                    self._idle.set()
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = self._queue[:MAX_BATCH]
                await self._send(batch)
                del self._queue[:len(batch)]
        except StreamsError as exc:
            self._error = exc
            self._idle.set()

    async def _connect(self) -> None:
        assert self._client is not None
        last: str = "no attempt"
        for attempt in range(MAX_ATTEMPTS):
            try:
                response = await self._client.put(
                    self._url, headers={**self._headers, "Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                last = f"cannot reach {self._url}: {exc!r}"
            else:
                if response.status_code in (200, 201):
                    self._connected = True
                    return
                if response.status_code < 500 and response.status_code != 429:
                    raise StreamWriteError(stream_path=self._stream_path,
                                           reason=f"create answered {response.status_code}: "
                                                  f"{response.text[:200]}")
                last = f"create answered {response.status_code}"
            await asyncio.sleep(min(0.1 * 2 ** attempt, 1.0))
        raise StreamWriteError(stream_path=self._stream_path, reason=last)

    async def _send(self, batch: list[dict[str, Any]]) -> None:
        assert self._client is not None
        body = httpx.Request("POST", self._url, json=batch).content
        last = "no attempt"
        for attempt in range(MAX_ATTEMPTS):
            headers = {**self._headers, "Content-Type": "application/json",
                       "Producer-Id": self._producer_id, "Producer-Epoch": str(self._epoch),
                       "Producer-Seq": str(self._seq)}
            try:
                response = await self._client.post(self._url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                last = f"cannot reach {self._url}: {exc!r}"
            else:
                status = response.status_code
                if status in (200, 204):
                    self._seq += 1
                    return
                if status == 403 and "producer-epoch" in response.headers:
                    if self._seq > 0:
                        # A newer incarnation took over while this one was writing: we are the
                        # zombie, and must not fence it back.
                        raise StreamWriteError(
                            stream_path=self._stream_path,
                            reason=f"producer {self._producer_id!r} was fenced by epoch "
                                   f"{response.headers['producer-epoch']}")
                    # Our clock is behind the last incarnation's epoch: claim the next one.
                    self._epoch = int(response.headers["producer-epoch"]) + 1
                    continue
                if status < 500 and status != 429:
                    raise StreamWriteError(stream_path=self._stream_path,
                                           reason=f"append answered {status}: "
                                                  f"{response.text[:200]}")
                last = f"append answered {status}"
            await asyncio.sleep(min(0.1 * 2 ** attempt, 1.0))
        raise StreamWriteError(stream_path=self._stream_path, reason=last)


_producers: dict[str, DurableStreamProducer] = {}


def create_durable_stream(
    *, stream_path: str, schema: StreamSchema, producer_id: str, base_url: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> DurableStreamProducer:
    """The producer of ``stream_path``: one per path per process (a closed one is replaced).

    The server URL comes from ``base_url`` or the environment (see ``get_streams_url``). Inside
    a running event loop the producer starts connecting at once; otherwise on first flush.
    """
    key = "/" + stream_path.lstrip("/")
    existing = _producers.get(key)
    if existing is not None and not existing.closed:
        return existing
    producer = DurableStreamProducer(stream_path=key, schema=schema, producer_id=producer_id,
                                     base_url=base_url, headers=headers)
    _producers[key] = producer
    return producer


def _release(producer: DurableStreamProducer) -> None:
    if _producers.get(producer.stream_path) is producer:
        del _producers[producer.stream_path]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
