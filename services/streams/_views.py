"""Materialized views: the latest value per ``(type, key)`` of a State-Protocol stream.

A view applies the stream's change events in order and keeps its state in a compacted
changelog topic (one record per entity, a tombstone per delete, plus a checkpoint of the stream
offset applied), so after a restart it resumes from the checkpoint instead of replaying the
stream — and still knows every live entity when retention has dropped old appends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from services.streams._errors import OffsetTrimmedError, StreamGoneError
from services.streams._log import OutRecord, StreamLog
from services.streams._store import StreamStore
from services.streams._topics import view_topic_for

logger = logging.getLogger(__name__)

CHECKPOINT_KEY = b"\x00applied"
_READ_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class Entity:
    """One live entity and the stream offset of the append that last set it."""

    type: str
    key: str
    value: Any
    offset: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Changes:
    """Change events read from the stream, and the offset after them."""

    events: list[dict[str, Any]]
    next_offset: int


class View:
    """The materialized view of one stream incarnation."""

    def __init__(self, *, store: StreamStore, log: StreamLog, path: str, topic: str) -> None:
        self._store = store
        self._log = log
        self.path = path
        self._topic = view_topic_for(topic)
        self.entities: dict[tuple[str, str], Entity] = {}
        self.applied = 0
        self.skipped = 0  # messages that were not change events
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Create the changelog topic if needed and restore the view from it."""
        await self._log.create_topic(self._topic, configs={
            "cleanup.policy": "compact", "retention.ms": "-1"})
        end = await self._log.end_offset(self._topic)
        offset = 0
        while offset < end:
            records, _hw = await self._log.read(self._topic, offset, max_bytes=_READ_CHUNK)
            if not records:
                break
            for record in records:
                if record.key == CHECKPOINT_KEY:
                    self.applied = int(record.value or b"0")
                    continue
                kind, _, key = (record.key or b"").decode().partition("\x00")
                if record.value is None:
                    self.entities.pop((kind, key), None)
                else:
                    stored = json.loads(record.value)
                    self.entities[(kind, key)] = Entity(type=kind, key=key,
                                                        value=stored["value"],
                                                        offset=stored["offset"])
            offset = records[-1].offset + 1

    async def catch_up(self) -> int:
        """Apply everything the stream holds beyond ``applied``; returns the new ``applied``."""
        async with self._lock:
            while True:
                try:
                    chunk = await self._store.read(self.path, self.applied, touch=False)
                except StreamGoneError as exc:
                    if not isinstance(exc.__cause__, OffsetTrimmedError):
                        raise
                    # Retention dropped appends the view never saw; the changelog keeps what
                    # it had, and the view continues from the oldest retained append.
                    self.applied = await self._store.first_retained(self.path)
                    continue
                if not chunk.values:
                    return self.applied
                writes: dict[tuple[str, str], bytes | None] = {}
                for value, offset in zip(chunk.values, chunk.offsets, strict=True):
                    for event in json.loads(value):
                        self._apply(event, offset, writes)
                self.applied = chunk.next_offset
                records = [
                    OutRecord(key=f"{kind}\x00{key}".encode(), value=stored)
                    for (kind, key), stored in writes.items()
                ]
                records.append(OutRecord(key=CHECKPOINT_KEY, value=str(self.applied).encode()))
                await self._log.append(self._topic, records)

    def _apply(self, event: Any, offset: int,
               writes: dict[tuple[str, str], bytes | None]) -> None:
        if not isinstance(event, dict) or "type" not in event or "key" not in event:
            self.skipped += 1
            return
        ident = (str(event["type"]), str(event["key"]))
        operation = (event.get("headers") or {}).get("operation")
        if operation == "delete":
            self.entities.pop(ident, None)
            writes[ident] = None
            return
        if "value" not in event:
            self.skipped += 1
            return
        self.entities[ident] = Entity(type=ident[0], key=ident[1], value=event["value"],
                                      offset=offset)
        writes[ident] = json.dumps({"value": event["value"], "offset": offset}).encode()

    async def wait_for(self, offset: int, timeout: float) -> bool:
        """Catch up until ``applied >= offset``; False when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while await self.catch_up() < offset:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await self._store.wait(self.path, self.applied, remaining)
        return True

    def snapshot(self, *, entity_type: str | None = None, key: str | None = None) -> list[Entity]:
        """Live entities, optionally of one type (and one key), in key order."""
        return [
            entity for (kind, ident), entity in sorted(self.entities.items())
            if (entity_type is None or kind == entity_type) and (key is None or ident == key)
        ]


class Views:
    """The views the server has materialized, one per stream incarnation, built on demand."""

    def __init__(self, *, store: StreamStore, log: StreamLog) -> None:
        self._store = store
        self._log = log
        self._views: dict[str, View] = {}
        self._lock = asyncio.Lock()

    async def get(self, path: str) -> View:
        """The view of ``path`` (404/410 as for the stream itself)."""
        meta, _tail = await self._store.head(path)
        view = self._views.get(meta.topic)
        if view is None:
            async with self._lock:
                view = self._views.get(meta.topic)
                if view is None:
                    view = View(store=self._store, log=self._log, path=path, topic=meta.topic)
                    await view.load()
                    self._views[meta.topic] = view
        return view

    async def read_changes(self, path: str, offset: int, *, live: bool = False) -> Changes:
        """Change events of ``path`` from ``offset`` (raises StreamGoneError when trimmed).

        ``live``: the caller waited for these appends (they may come from memory).
        """
        chunk = await self._store.read(path, offset, touch=False, recent_ok=live)
        events: list[dict[str, Any]] = []
        for value in chunk.values:
            events.extend(e for e in json.loads(value) if isinstance(e, dict))
        return Changes(events=events, next_offset=chunk.next_offset)
