"""Streams on the log: create, append (group-committed), read, wait, close, fork, delete, expire.

Each stream owns a one-partition topic; one record per append (a JSON-mode append stores its
flattened messages as one JSON array), so stream offsets are log offsets. A fork's offsets
continue its source's: offsets below the fork's ``base`` read the source, the rest read the
fork's own topic at ``offset - base``. Closing appends a marker record in the same batch as the
final data, so "append and close" is atomic; the marker takes a log offset that is never served.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from services.streams._catalog import Catalog
from services.streams._errors import (
    BadStreamRequestError,
    OffsetTrimmedError,
    StaleProducerEpochError,
    StreamConflictError,
    StreamGoneError,
    StreamNotFoundError,
)
from services.streams._log import LogRecord, OutRecord, StreamLog
from services.streams._model import ForkOrigin, StreamMeta, media_type
from services.streams._offsets import format_offset
from services.streams._topics import topic_for, view_topic_for
from services.streams._writers import ProducerClaim, ProducerState, Verdict, WriterState, decide

CLOSE_KEY = b"ds:close"
PRODUCER_HEADER = "ds-producer"
STREAM_SEQ_HEADER = "ds-stream-seq"
RECENT_RECORDS = 1024
RECENT_BYTES = 4 * 1024 * 1024
STREAM_TOPIC_CONFIGS = {"cleanup.policy": "delete", "retention.ms": "-1",
                        "retention.bytes": "-1", "max.message.bytes": str(17 * 1024 * 1024)}


@dataclass(frozen=True, kw_only=True, slots=True)
class AppendRequest:
    """One POST: its data (raw bytes, or a JSON array of flattened messages) and headers."""

    data: bytes | None  # None or b"": nothing to append (close-only)
    content_type: str | None = None
    close: bool = False
    stream_seq: str | None = None
    producer: ProducerClaim | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AppendResult:
    """How an append ended (errors are raised instead)."""

    next_offset: int
    closed: bool
    duplicate: bool = False  # nothing new was stored (idempotent retry, or close of a closed one)
    producer_epoch: int | None = None
    producer_seq: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadResult:
    """A chunk of a stream."""

    values: list[bytes]  # one per append (JSON: each a JSON array of messages)
    offsets: list[int]  # the stream offset of each value
    start: int
    next_offset: int
    tail: int
    closed: bool  # closed, and this chunk reaches the final offset
    meta: StreamMeta

    @property
    def up_to_date(self) -> bool:
        return self.next_offset >= self.tail


@dataclass(kw_only=True, slots=True)
class _Live:
    meta: StreamMeta
    log_end: int  # next log offset of the stream's own topic
    touched: float
    writer: WriterState | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    pending: list[tuple[AppendRequest, asyncio.Future[AppendResult]]] = field(
        default_factory=list)
    draining: bool = False
    gone: bool = False
    resync: bool = False  # a write failed: re-read the end of the log before the next one
    # The latest appends as (log offset, value), contiguous and ending at log_end: live readers
    # (long-poll, SSE) and read-after-write are served without a round trip to the log.
    recent: deque[tuple[int, bytes]] = field(default_factory=deque)
    recent_bytes: int = 0

    def remember(self, base: int, records: Sequence[OutRecord]) -> None:
        if self.recent and self.recent[-1][0] + 1 != base:
            self.recent.clear()
            self.recent_bytes = 0
        for index, record in enumerate(records):
            if record.key == CLOSE_KEY or record.value is None:
                continue
            self.recent.append((base + index, record.value))
            self.recent_bytes += len(record.value)
        while self.recent and (len(self.recent) > RECENT_RECORDS
                               or self.recent_bytes > RECENT_BYTES):
            self.recent_bytes -= len(self.recent.popleft()[1])

    def cached(self, start: int, end: int, max_bytes: int) -> list[tuple[int, bytes]] | None:
        """Records with log offsets in ``[start, end)`` if the cache holds them all."""
        if not self.recent or start < self.recent[0][0]:
            return None
        index = start - self.recent[0][0]
        out: list[tuple[int, bytes]] = []
        size = 0
        for offset, value in itertools.islice(self.recent, index, None):
            if offset >= end or (out and size + len(value) > max_bytes):
                break
            out.append((offset, value))
            size += len(value)
        return out

    @property
    def base(self) -> int:
        return self.meta.fork.base if self.meta.fork else 0

    @property
    def tail(self) -> int:
        return self.base + self.log_end - (1 if self.meta.closed else 0)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class StreamStore:
    """Every stream the server knows, backed by the log."""

    def __init__(self, log: StreamLog, catalog: Catalog, *, max_read_bytes: int = 1 << 20
                 ) -> None:
        self._log = log
        self._catalog = catalog
        self._max_read_bytes = max_read_bytes
        self._live: dict[str, _Live] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._started = time.time()
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[Callable[[str, int], None]] = []

    def add_listener(self, listener: Callable[[str, int], None]) -> None:
        """Call ``listener(path, tail)`` after a stream is created or its tail grows.

        Listeners run on the event loop right after the log acknowledged the write; they must
        not block (start a task for I/O).
        """
        self._listeners.append(listener)

    def _announce(self, path: str, tail: int) -> None:
        for listener in self._listeners:
            listener(path, tail)

    def paths(self) -> list[str]:
        """Every live (not deleted) stream path."""
        return [m.path for m in self._catalog.all() if not m.soft_deleted]

    # ------------------------------------------------------------------ lookup and lifecycle

    def _lock(self, path: str) -> asyncio.Lock:
        lock = self._locks.get(path)
        if lock is None:
            lock = self._locks[path] = asyncio.Lock()
        return lock

    async def _get(self, path: str, *, touch: bool, allow_soft_deleted: bool = False) -> _Live:
        """The live state of ``path``: 404 when absent or expired, 410 when soft-deleted."""
        live = self._live.get(path)
        if live is None:
            meta = self._catalog.get(path)
            if meta is None:
                raise StreamNotFoundError(f"no stream at {path}")
            async with self._lock(path):
                live = self._live.get(path)
                if live is None:
                    live = await self._load(meta)
        if live.meta.soft_deleted:
            if allow_soft_deleted:
                return live
            raise StreamGoneError(f"stream {path} was deleted; its forks still read it")
        if self._expired(live):
            await self._expire(live)
            if live.meta.soft_deleted and allow_soft_deleted:
                return live
            if live.meta.soft_deleted:
                raise StreamGoneError(f"stream {path} expired; its forks still read it")
            raise StreamNotFoundError(f"stream {path} expired")
        if touch:
            live.touched = time.time()
        return live

    async def _load(self, meta: StreamMeta) -> _Live:
        log_end = await self._log.end_offset(meta.topic)
        # A restart forgets reads that kept a sliding TTL alive; restarting the window errs on
        # keeping a stream, never on expiring it early.
        live = _Live(meta=meta, log_end=log_end, touched=max(self._started, meta.created_at))
        await self._adopt_close_marker(live)
        self._live[meta.path] = live
        return live

    async def _adopt_close_marker(self, live: _Live) -> None:
        """Close the stream if its last record is a close marker the catalog missed.

        The marker is written before the catalog learns of the close; a crash (or a failed
        answer from the log) in between leaves the marker as the only record of it.
        """
        if not live.log_end or live.meta.closed:
            return
        last, _hw = await self._log.read(live.meta.topic, live.log_end - 1, max_bytes=1024)
        if last and last[-1].key == CLOSE_KEY:
            live.meta = live.meta.with_(closed=True, closed_by=_claim_of(last[-1]))
            await self._catalog.put(live.meta)

    def _expired(self, live: _Live) -> bool:
        now = time.time()
        meta = live.meta
        expires = meta.expires_at_ts
        if expires is not None and expires <= now:
            return True
        return meta.ttl_seconds is not None and live.touched + meta.ttl_seconds <= now

    async def _expire(self, live: _Live) -> None:
        async with self._lock(live.meta.path):
            if self._live.get(live.meta.path) is not live or live.meta.soft_deleted:
                return
            await self._delete_locked(live)

    def _children(self, path: str) -> list[StreamMeta]:
        return [m for m in self._catalog.all() if m.fork is not None and m.fork.source == path]

    # ------------------------------------------------------------------ create

    async def create(
        self, path: str, *, content_type: str | None, ttl_seconds: int | None,
        expires_at: str | None, closed: bool, data: bytes | None,
        fork: tuple[str, str | None, int] | None = None,
    ) -> tuple[bool, StreamMeta, int]:
        """Create ``path`` (or confirm an identical one): ``(created, meta, tail)``."""
        async with self._lock(path):
            existing = self._catalog.get(path)
            if existing is not None:
                live = self._live.get(path) or await self._load(existing)
                if live.meta.soft_deleted:
                    raise StreamConflictError(f"{path} was deleted and its forks still use it")
                if not self._expired(live):
                    if not _same_config(live.meta, content_type=content_type,
                                        ttl_seconds=ttl_seconds, expires_at=expires_at,
                                        closed=closed, fork=fork):
                        raise StreamConflictError(
                            f"a stream already exists at {path} with another configuration")
                    return False, live.meta, live.tail
                await self._delete_locked(live)
            origin: ForkOrigin | None = None
            prefix: bytes | None = None
            if fork is not None:
                origin, prefix, content_type, ttl_seconds, expires_at = await self._plan_fork(
                    fork, content_type=content_type, ttl_seconds=ttl_seconds,
                    expires_at=expires_at)
            incarnation = uuid.uuid4().hex
            meta = StreamMeta(
                path=path, topic=topic_for(path, incarnation), incarnation=incarnation,
                content_type=content_type or "application/octet-stream",
                created_at=time.time(), ttl_seconds=ttl_seconds, expires_at=expires_at,
                fork=origin,
            )
            await self._log.create_topic(meta.topic, configs=STREAM_TOPIC_CONFIGS)
            records = [OutRecord(value=v) for v in (prefix, data) if v]
            if closed:
                records.append(OutRecord(key=CLOSE_KEY, value=b""))
            if records:
                await self._log.append(meta.topic, records)
            meta = meta.with_(closed=closed)
            await self._catalog.put(meta)
            live = _Live(meta=meta, log_end=len(records), touched=time.time(),
                         writer=WriterState())
            self._live[path] = live
            self._announce(path, live.tail)
            return True, meta, live.tail

    async def _plan_fork(
        self, fork: tuple[str, str | None, int], *, content_type: str | None,
        ttl_seconds: int | None, expires_at: str | None,
    ) -> tuple[ForkOrigin, bytes | None, str, int | None, str | None]:
        source_path, offset_token, sub_offset = fork
        try:
            source = await self._get(source_path, touch=False)
        except StreamGoneError as exc:
            raise StreamConflictError(f"cannot fork {source_path}: it was deleted") from exc
        if content_type is not None and (
            media_type(content_type) != media_type(source.meta.content_type)
        ):
            raise StreamConflictError(
                f"content type {content_type} differs from the source's "
                f"{source.meta.content_type}")
        from services.streams._offsets import parse_offset

        base = source.tail if offset_token is None else parse_offset(offset_token)
        if base is None or base < 0:
            raise BadStreamRequestError(f"invalid Stream-Fork-Offset {offset_token!r}")
        if base > source.tail:
            raise BadStreamRequestError(
                f"Stream-Fork-Offset {offset_token} is past the source's tail")
        prefix: bytes | None = None
        if sub_offset:
            chunk = await self.read_meta(source.meta, base, max_bytes=1)
            if not chunk.values or chunk.start != base:
                raise BadStreamRequestError("Stream-Fork-Sub-Offset points past the source's data")
            prefix = _prefix(chunk.values[0], sub_offset, json_mode=source.meta.is_json)
        if ttl_seconds is None and expires_at is None:
            ttl_seconds, expires_at = source.meta.ttl_seconds, source.meta.expires_at
        origin = ForkOrigin(source=source_path, base=base,
                            offset=offset_token if offset_token is not None else "",
                            sub_offset=sub_offset)
        return origin, prefix, source.meta.content_type, ttl_seconds, expires_at

    # ------------------------------------------------------------------ append (group commit)

    async def append(self, path: str, request: AppendRequest) -> AppendResult:
        """Validate and store one POST; concurrent appends to a stream share one log write."""
        live = await self._get(path, touch=True)
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        live.pending.append((request, future))
        if not live.draining:
            live.draining = True
            task = asyncio.create_task(self._drain(live))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, live: _Live) -> None:
        try:
            while live.pending:
                batch, live.pending = live.pending, []
                try:
                    await self._commit(live, batch)
                except Exception as exc:  # the log failed: every waiter gets the error
                    # The batch may or may not have been stored: forget what we believe about
                    # the stream's end and writers, and re-read both from the log before the
                    # next append, so a retry is recognised if the batch did land.
                    live.writer = None
                    live.resync = True
                    for _request, future in batch:
                        if not future.done():
                            future.set_exception(exc)
        finally:
            live.draining = False

    async def _commit(
        self, live: _Live, batch: Sequence[tuple[AppendRequest, asyncio.Future[AppendResult]]]
    ) -> None:
        if live.resync:
            live.log_end = await self._log.end_offset(live.meta.topic)
            live.recent.clear()
            live.recent_bytes = 0
            await self._adopt_close_marker(live)
            live.resync = False
        if live.writer is None:
            live.writer = await self._replay_writer(live)
        if live.gone:
            for _request, future in batch:
                future.set_exception(StreamNotFoundError(f"stream {live.meta.path} was deleted"))
            return
        state = live.writer.copy()
        closed = live.meta.closed
        tail = live.tail
        records: list[OutRecord] = []
        outcomes: list[tuple[asyncio.Future[AppendResult], AppendResult | Exception]] = []
        for request, future in batch:
            outcome = self._plan_append(live, state, closed, tail, request)
            if isinstance(outcome, Exception):
                outcomes.append((future, outcome))
                continue
            new_records, result = outcome
            if new_records:
                records.extend(new_records)
                tail = result.next_offset
                closed = closed or request.close
            outcomes.append((future, result))
        if records:
            base = await self._log.append(live.meta.topic, records)
            live.remember(base, records)
            live.log_end = base + len(records)
        closing = closed and not live.meta.closed
        live.writer = state
        if closing:
            live.meta = live.meta.with_(closed=True, closed_by=state.closed_by)
        live.notify()
        if records:
            self._announce(live.meta.path, live.tail)
        if closing:
            await self._catalog.put(live.meta)
        for future, answer in outcomes:
            if future.done():
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    def _plan_append(
        self, live: _Live, state: WriterState, closed: bool, tail: int, request: AppendRequest,
    ) -> Exception | tuple[list[OutRecord] | None, AppendResult]:
        claim = request.producer
        if closed:
            if claim is not None and state.closed_by == claim:
                return None, AppendResult(next_offset=tail, closed=True, duplicate=True,
                                          producer_epoch=claim.epoch, producer_seq=claim.seq)
            if request.close and not request.data:
                return None, AppendResult(next_offset=tail, closed=True, duplicate=True)
            if claim is not None:
                known = state.producers.get(claim.producer_id)
                if known is not None and claim.epoch < known.epoch:
                    return StaleProducerEpochError(
                        f"producer epoch {claim.epoch} is older than {known.epoch}",
                        headers={"Producer-Epoch": str(known.epoch)})
            return StreamConflictError(
                f"stream {live.meta.path} is closed",
                headers={"Stream-Closed": "true", "Stream-Next-Offset": format_offset(tail)})
        if request.data and request.content_type is not None and (
            media_type(request.content_type) != media_type(live.meta.content_type)
        ):
            return StreamConflictError(
                f"content type {request.content_type} does not match the stream's "
                f"{live.meta.content_type}")
        new_state: ProducerState | None = None
        if claim is not None:
            decision = decide(claim, state.producers.get(claim.producer_id))
            if decision.verdict is Verdict.DUPLICATE:
                last = decision.state.last_seq if decision.state else claim.seq
                return None, AppendResult(next_offset=tail, closed=closed, duplicate=True,
                                          producer_epoch=claim.epoch, producer_seq=last)
            if decision.verdict is Verdict.STALE_EPOCH:
                return StaleProducerEpochError(
                    f"producer epoch {claim.epoch} is older than {decision.current_epoch}",
                    headers={"Producer-Epoch": str(decision.current_epoch)})
            if decision.verdict is Verdict.BAD_EPOCH_START:
                return BadStreamRequestError("a new producer epoch must start at Producer-Seq 0")
            if decision.verdict is Verdict.SEQ_GAP:
                return StreamConflictError(
                    f"Producer-Seq {claim.seq} skips {decision.expected_seq}",
                    headers={"Producer-Expected-Seq": str(decision.expected_seq),
                             "Producer-Received-Seq": str(claim.seq)})
            new_state = decision.state
        if request.stream_seq is not None and not state.stream_seq_ok(request.stream_seq):
            return StreamConflictError(
                f"Stream-Seq {request.stream_seq!r} is not after {state.last_stream_seq!r}")
        headers: list[tuple[str, bytes]] = []
        if claim is not None:
            headers.append((PRODUCER_HEADER, _encode_claim(claim)))
        if request.stream_seq is not None:
            headers.append((STREAM_SEQ_HEADER, request.stream_seq.encode()))
        records: list[OutRecord] = []
        if request.data:
            records.append(OutRecord(value=request.data, headers=headers))
        if request.close:
            records.append(OutRecord(key=CLOSE_KEY, value=b"", headers=headers))
            state.closed_by = claim
        if claim is not None and new_state is not None:
            state.producers[claim.producer_id] = new_state
        if request.stream_seq is not None:
            state.last_stream_seq = request.stream_seq
        result = AppendResult(
            next_offset=tail + (1 if request.data else 0), closed=request.close,
            producer_epoch=claim.epoch if claim else None,
            producer_seq=claim.seq if claim else None)
        return records, result

    async def _replay_writer(self, live: _Live) -> WriterState:
        """Rebuild producer and Stream-Seq state from the headers of the stream's own records."""
        state = WriterState()
        offset = 0
        while offset < live.log_end:
            records, _hw = await self._log.read(live.meta.topic, offset, max_bytes=4 << 20)
            if not records:
                break
            for record in records:
                _apply_headers(state, record)
            offset = records[-1].offset + 1
        return state

    # ------------------------------------------------------------------ read and wait

    async def head(self, path: str, *, touch: bool = False) -> tuple[StreamMeta, int]:
        """Metadata and tail; extends a sliding TTL only with ``touch`` (reads do, HEAD not)."""
        live = await self._get(path, touch=touch)
        return live.meta, live.tail

    async def read(self, path: str, offset: int | None, *, touch: bool = True,
                   recent_ok: bool = False) -> ReadResult:
        """A chunk from ``offset`` (None: the tail, i.e. nothing).

        ``recent_ok`` lets a live reader that just waited for new data take it from the
        in-memory copy of the latest appends; other reads ask the log, which alone knows
        whether retention dropped the offset.
        """
        live = await self._get(path, touch=touch)
        if offset is None:
            return ReadResult(values=[], offsets=[], start=live.tail, next_offset=live.tail,
                              tail=live.tail, closed=live.meta.closed, meta=live.meta)
        if offset > live.tail:
            raise BadStreamRequestError("offset is past the stream's tail")
        try:
            return await self.read_meta(live.meta, offset, max_bytes=self._max_read_bytes,
                                        recent_ok=recent_ok)
        except OffsetTrimmedError as exc:
            raise StreamGoneError(
                f"offset {format_offset(offset)} is before the earliest retained data") from exc

    async def first_retained(self, path: str) -> int:
        """The oldest stream offset of ``path`` whose data the log still holds."""
        live = await self._get(path, touch=False)
        return live.base + await self._log.start_offset(live.meta.topic)

    async def read_meta(
        self, meta: StreamMeta, offset: int, *, max_bytes: int, limit: int | None = None,
        recent_ok: bool = False,
    ) -> ReadResult:
        """A chunk of ``meta``'s stream from ``offset``, leaving out offsets at/after ``limit``."""
        live = self._live.get(meta.path)
        if live is None:
            async with self._lock(meta.path):
                live = self._live.get(meta.path) or await self._load(meta)
        tail = live.tail if limit is None else min(live.tail, limit)
        values: list[bytes] = []
        offsets: list[int] = []
        position = offset
        fork = live.meta.fork
        if fork is not None and position < fork.base:
            source = self._catalog.get(fork.source)
            if source is None:
                raise StreamNotFoundError(f"the source of {meta.path} is gone")
            inherited = await self.read_meta(source, position, max_bytes=max_bytes,
                                             limit=min(fork.base, tail))
            values = list(inherited.values)
            offsets = list(inherited.offsets)
            position = inherited.next_offset
            max_bytes -= sum(len(v) for v in values)
            if position < min(fork.base, tail) or max_bytes <= 0:
                return ReadResult(values=values, offsets=offsets, start=offset,
                                  next_offset=position,
                                  tail=live.tail, closed=False, meta=live.meta)
            position = fork.base
        if position < tail:
            hits = (live.cached(position - live.base, tail - live.base, max(max_bytes, 1))
                    if recent_ok else None)
            if hits is not None:
                for log_offset, value in hits:
                    values.append(value)
                    offsets.append(live.base + log_offset)
                    position = live.base + log_offset + 1
            else:
                records, _hw = await self._log.read(
                    live.meta.topic, position - live.base, max_bytes=max(max_bytes, 1),
                    end=tail - live.base)
                for record in records:
                    position = live.base + record.offset + 1
                    if record.key != CLOSE_KEY and record.value is not None:
                        values.append(record.value)
                        offsets.append(live.base + record.offset)
        position = min(position, tail)
        return ReadResult(values=values, offsets=offsets, start=offset, next_offset=position,
                          tail=live.tail,
                          closed=limit is None and live.meta.closed and position >= live.tail,
                          meta=live.meta)

    async def wait(self, path: str, offset: int, timeout: float) -> bool:
        """Wait until data past ``offset`` exists or the stream closes; False on timeout."""
        live = await self._get(path, touch=True)
        deadline = time.monotonic() + timeout
        while live.tail <= offset and not live.meta.closed and not live.gone:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(live.changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    # ------------------------------------------------------------------ delete

    async def delete(self, path: str) -> None:
        """Delete ``path``; a stream that forks still read is soft-deleted instead."""
        live = await self._get(path, touch=False)
        async with self._lock(path):
            await self._delete_locked(live)

    async def _delete_locked(self, live: _Live) -> None:
        meta = live.meta
        if self._children(meta.path):
            live.meta = meta.with_(soft_deleted=True)
            await self._catalog.put(live.meta)
            live.notify()
            return
        await self._purge(live)

    async def _purge(self, live: _Live) -> None:
        meta = live.meta
        await self._catalog.remove(meta.path)
        live.gone = True
        live.notify()
        if self._live.get(meta.path) is live:
            del self._live[meta.path]
        await self._log.delete_topic(meta.topic)
        await self._log.delete_topic(view_topic_for(meta.topic))
        if meta.fork is not None:
            source = self._catalog.get(meta.fork.source)
            if source is not None and source.soft_deleted and not self._children(source.path):
                source_live = self._live.get(source.path) or await self._load(source)
                await self._purge(source_live)

    async def sweep(self) -> None:
        """Delete every expired stream (the read path also expires them lazily)."""
        for meta in self._catalog.all():
            live = self._live.get(meta.path)
            if live is None or live.meta.soft_deleted:
                continue
            if self._expired(live):
                await self._expire(live)


def _encode_claim(claim: ProducerClaim) -> bytes:
    return json.dumps([claim.producer_id, claim.epoch, claim.seq]).encode()


def _claim_of(record: LogRecord) -> ProducerClaim | None:
    for key, value in record.headers:
        if key == PRODUCER_HEADER:
            producer_id, epoch, seq = json.loads(value)
            return ProducerClaim(producer_id=producer_id, epoch=epoch, seq=seq)
    return None


def _apply_headers(state: WriterState, record: LogRecord) -> None:
    claim = _claim_of(record)
    if claim is not None:
        known = state.producers.get(claim.producer_id)
        if known is None or claim.epoch > known.epoch or claim.seq > known.last_seq:
            state.producers[claim.producer_id] = ProducerState(epoch=claim.epoch,
                                                               last_seq=claim.seq)
    for key, value in record.headers:
        if key == STREAM_SEQ_HEADER:
            state.last_stream_seq = value.decode()
    if record.key == CLOSE_KEY:
        state.closed_by = claim


def _prefix(value: bytes, sub_offset: int, *, json_mode: bool) -> bytes:
    if json_mode:
        messages = json.loads(value)
        if sub_offset > len(messages):
            raise BadStreamRequestError(
                f"Stream-Fork-Sub-Offset {sub_offset} is past the append's "
                f"{len(messages)} messages")
        return json.dumps(messages[:sub_offset], separators=(",", ":"),
                          ensure_ascii=False).encode()
    if sub_offset > len(value):
        raise BadStreamRequestError(
            f"Stream-Fork-Sub-Offset {sub_offset} is past the append's {len(value)} bytes")
    return value[:sub_offset]


def _same_config(
    meta: StreamMeta, *, content_type: str | None, ttl_seconds: int | None,
    expires_at: str | None, closed: bool, fork: tuple[str, str | None, int] | None,
) -> bool:
    wanted_type = content_type or ("" if fork else "application/octet-stream")
    if wanted_type and media_type(wanted_type) != media_type(meta.content_type):
        return False
    if fork is not None:
        source, offset, sub_offset = fork
        if meta.fork is None or meta.fork.source != source:
            return False
        if offset is not None and offset != meta.fork.offset and (
            offset != format_offset(meta.fork.base)
        ):
            return False
        if sub_offset != meta.fork.sub_offset:
            return False
        if ttl_seconds is None and expires_at is None:
            return meta.closed == closed
    elif meta.fork is not None:
        return False
    if ttl_seconds != meta.ttl_seconds:
        return False
    if (expires_at is None) != (meta.expires_at is None):
        return False
    if expires_at is not None and meta.expires_at is not None and expires_at != meta.expires_at:
        from services.streams._model import parse_rfc3339

        if parse_rfc3339(expires_at) != parse_rfc3339(meta.expires_at):
            return False
    return meta.closed == closed
