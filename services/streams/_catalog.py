"""The catalog: every stream's configuration, as a compacted topic on the log.

The server replays the topic at start (latest value per path), so streams survive restarts of
the server and of the log with no other database. A write is acknowledged by the log
(acks=all) before the HTTP response that caused it.
"""

from __future__ import annotations

from services.streams._log import OutRecord, StreamLog
from services.streams._model import StreamMeta

CATALOG_TOPIC = "__netscript_streams"
_READ_CHUNK = 4 * 1024 * 1024


class Catalog:
    """The latest :class:`StreamMeta` per stream path."""

    def __init__(self, log: StreamLog, *, topic: str = CATALOG_TOPIC) -> None:
        self._log = log
        self._topic = topic
        self._streams: dict[str, StreamMeta] = {}

    async def load(self) -> None:
        """Create the catalog topic if needed and replay it."""
        await self._log.create_topic(self._topic, configs={
            "cleanup.policy": "compact", "retention.ms": "-1",
        })
        end = await self._log.end_offset(self._topic)
        offset = 0
        while offset < end:
            records, _hw = await self._log.read(self._topic, offset, max_bytes=_READ_CHUNK)
            if not records:
                break
            for record in records:
                path = (record.key or b"").decode()
                if record.value is None:
                    self._streams.pop(path, None)
                else:
                    self._streams[path] = StreamMeta.from_json(record.value)
            offset = records[-1].offset + 1

    def get(self, path: str) -> StreamMeta | None:
        return self._streams.get(path)

    def all(self) -> list[StreamMeta]:
        return list(self._streams.values())

    async def put(self, meta: StreamMeta) -> None:
        """Store ``meta`` durably, then make it current."""
        await self._log.append(self._topic, [OutRecord(key=meta.path.encode(),
                                                       value=meta.to_json())])
        self._streams[meta.path] = meta

    async def remove(self, path: str) -> None:
        """Forget ``path`` durably (a tombstone the compaction later drops)."""
        await self._log.append(self._topic, [OutRecord(key=path.encode(), value=None)])
        self._streams.pop(path, None)
