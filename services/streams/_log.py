"""The streams server's view of the log: topics as stream storage.

Appends go through one idempotent ``acks="all"`` producer, one record batch per group commit
(a batch is stored atomically, so an append and its producer headers are never half-written).
Reads are stateless Kafka ``Fetch`` requests at an arbitrary offset on a separate connection,
so a slow fsync never delays a read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    KafkaError,
    OffsetOutOfRangeError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from aiokafka.errors import for_code as error_for_code
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from services.streams._errors import LogUnavailableError, OffsetTrimmedError

Headers = Sequence[tuple[str, bytes]]

MAX_RECORD_BYTES = 16 * 1024 * 1024
_LATEST = -1
_EARLIEST = -2


@dataclass(frozen=True, kw_only=True, slots=True)
class LogRecord:
    """One record of a stream topic."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int


@dataclass(frozen=True, kw_only=True, slots=True)
class OutRecord:
    """A record to append (``value=None`` is a tombstone on a compacted topic)."""

    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()


class StreamLog:
    """Topic-level operations the streams server needs, on any Kafka-compatible log."""

    def __init__(self, bootstrap_servers: str, *, client_id: str = "streams") -> None:
        self._bootstrap = bootstrap_servers
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, client_id=client_id, acks="all",
            enable_idempotence=True, linger_ms=0, max_batch_size=MAX_RECORD_BYTES,
            max_request_size=MAX_RECORD_BYTES + 1024 * 1024, request_timeout_ms=15000,
        )
        self._reader = AIOKafkaClient(bootstrap_servers=bootstrap_servers,
                                      client_id=client_id + "-reader", request_timeout_ms=15000)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers,
                                          client_id=client_id + "-admin", request_timeout_ms=15000)

    async def start(self) -> None:
        try:
            await self._producer.start()
            await self._reader.bootstrap()
            await self._admin.start()
        except KafkaError as exc:
            await self.close()
            raise LogUnavailableError(str(exc)) from exc

    async def close(self) -> None:
        for closer in (self._admin.close, self._reader.close, self._producer.stop):
            # Closing on a dead log must not mask the error that got us here.
            with contextlib.suppress(Exception):
                await closer()

    @property
    def producer(self) -> AIOKafkaProducer:
        return self._producer

    async def create_topic(self, name: str, *, configs: dict[str, str] | None = None) -> None:
        """Create a one-partition topic (an existing one is fine: creation is retried)."""
        topic = NewTopic(name, num_partitions=1, replication_factor=1,
                         topic_configs=configs or {})
        try:
            response = await self._admin.create_topics([topic])
        except KafkaError as exc:
            raise LogUnavailableError(str(exc)) from exc
        for _name, code, *_rest in response.topic_errors:
            error = error_for_code(code)
            if code and error is not TopicAlreadyExistsError:
                raise LogUnavailableError(f"cannot create topic {name}: {error.__name__}")

    async def delete_topic(self, name: str) -> None:
        """Delete a topic (a missing one is fine)."""
        try:
            response = await self._admin.delete_topics([name])
        except KafkaError as exc:
            raise LogUnavailableError(str(exc)) from exc
        for _name, code, *_rest in response.topic_error_codes:
            error = error_for_code(code)
            if code and error is not UnknownTopicOrPartitionError:
                raise LogUnavailableError(f"cannot delete topic {name}: {error.__name__}")

    async def append(self, topic: str, records: Sequence[OutRecord]) -> int:
        """Append ``records`` as one batch; returns the offset of the first."""
        batch = self._producer.create_batch()
        for record in records:
            if batch.append(key=record.key, value=record.value, timestamp=None,
                            headers=list(record.headers)) is None:
                raise ValueError("append does not fit in one record batch")
        batch.close()
        try:
            future = await self._producer.send_batch(batch, topic, partition=0)
            meta = await future
        except KafkaError as exc:
            raise LogUnavailableError(str(exc)) from exc
        return int(meta.offset)

    async def read(
        self, topic: str, offset: int, *, max_bytes: int, end: int | None = None
    ) -> tuple[list[LogRecord], int]:
        """Records from ``offset`` (at least one batch, up to about ``max_bytes``) and the HW.

        Records at or past ``end`` are left out. Returns ``([], hw)`` at the end of the log.
        """
        request = FetchRequest(0, 1, max_bytes, 1, [(topic, [(0, offset, max_bytes)])])
        response = await self._send(topic, request)
        for _topic, partitions in response.topics:
            for _partition, code, high_watermark, *data in partitions:
                if code == OffsetOutOfRangeError.errno:
                    raise OffsetTrimmedError(topic=topic, offset=offset)
                if code:
                    raise LogUnavailableError(
                        f"fetch {topic}@{offset}: {error_for_code(code).__name__}")
                return _decode(data[-1], offset, end), int(high_watermark)
        raise LogUnavailableError(f"fetch {topic}@{offset}: empty response")

    async def end_offset(self, topic: str) -> int:
        """The offset the next record of ``topic`` will get."""
        return await self._list_offset(topic, _LATEST)

    async def start_offset(self, topic: str) -> int:
        """The first offset ``topic`` still holds (retention may have dropped older ones)."""
        return await self._list_offset(topic, _EARLIEST)

    async def _list_offset(self, topic: str, which: int) -> int:
        request = OffsetRequest(-1, 1, [(topic, [(0, which)])])
        response = await self._send(topic, request)
        for _topic, partitions in response.topics:
            for _partition, code, *rest in partitions:
                if code:
                    raise LogUnavailableError(
                        f"list offsets {topic}: {error_for_code(code).__name__}")
                return int(rest[-1])
        raise LogUnavailableError(f"list offsets {topic}: empty response")

    async def _send(self, topic: str, request: Any) -> Any:
        for attempt in range(20):
            node = self._reader.cluster.leader_for_partition(TopicPartition(topic, 0))
            if node is None or node < 0:
                self._reader.add_topic(topic)
                try:
                    await self._reader.force_metadata_update()
                except KafkaError as exc:
                    raise LogUnavailableError(str(exc)) from exc
                if attempt:
                    await asyncio.sleep(0.05)
                continue
            try:
                return await self._reader.send(node, request)
            except KafkaError as exc:
                raise LogUnavailableError(str(exc)) from exc
        raise LogUnavailableError(f"no leader for {topic}")


def _decode(data: bytes, start: int, end: int | None) -> list[LogRecord]:
    out: list[LogRecord] = []
    records = MemoryRecords(data)
    while records.has_next():
        batch = records.next_batch()
        if batch is None:
            break
        if getattr(batch, "is_control_batch", False):
            continue
        for record in batch:
            if record.offset < start:
                continue
            if end is not None and record.offset >= end:
                return out
            out.append(LogRecord(offset=record.offset, key=record.key, value=record.value,
                                 headers=tuple(record.headers), timestamp=record.timestamp))
    return out
