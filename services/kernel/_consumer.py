"""A consumer loop that never loses a record and never dies on one.

Each record is decoded, then handed to the handler inside a CONSUMER span that continues the
producer's trace. A record that cannot be decoded goes straight to the dead-letter topic (a
retry would fail the same way); a handler that raises is retried with backoff, and after its
last attempt the record goes to the dead-letter topic with the error in its headers. Offsets are
committed only after every record of a batch was handled or parked (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka.structs import ConsumerRecord, TopicPartition

from services.kernel._dead_letter import send_to_dead_letter
from services.kernel._kafka import Publisher, create_consumer
from services.kernel._settings import Settings
from services.kernel._tracing import consume_span

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often a failing handler is retried, and how long to wait in between."""

    max_attempts: int = 3
    backoff_seconds: float = 0.2  # doubled after each failed attempt
    max_backoff_seconds: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds))


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery(Generic[T]):
    """A decoded record and where it came from."""

    value: T
    key: bytes | None
    topic: str
    partition: int
    offset: int
    headers: tuple[tuple[str, bytes], ...]
    attempt: int


Handler = Callable[[Delivery[T]], Awaitable[None]]
Decoder = Callable[[bytes | None], T]


def _raw(value: bytes | None) -> Any:
    return value


class RecordConsumer(Generic[T]):
    """Consume ``topics`` as ``group_id`` until ``stop`` is set (see the module docstring)."""

    def __init__(
        self, settings: Settings, topics: Sequence[str], *, group_id: str,
        handler: Handler[T], decode: Decoder[T] = _raw, retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._settings = settings
        self._topics = list(topics)
        self._group_id = group_id
        self._handler = handler
        self._decode = decode
        self._retry = retry

    async def run(self, stop: asyncio.Event) -> None:
        """Run the loop; returns after ``stop`` is set and the current batch is committed."""
        consumer = create_consumer(self._settings, *self._topics, group_id=self._group_id)
        await consumer.start()
        try:
            async with Publisher(self._settings) as publisher:
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=200)
                    if not batches:
                        continue
                    commit: dict[TopicPartition, int] = {}
                    for partition, records in batches.items():
                        for record in records:
                            await self._one(record, publisher)
                            commit[partition] = record.offset + 1
                    await consumer.commit(commit)
        finally:
            await consumer.stop()

    async def _one(self, record: ConsumerRecord[bytes, bytes], publisher: Publisher) -> None:
        headers = tuple(record.headers or ())
        with consume_span(record.topic, record.partition, record.offset, headers):
            try:
                value = self._decode(record.value)
            except Exception as exc:
                logger.warning("cannot decode %s[%d]@%d: %s; dead-lettered", record.topic,
                               record.partition, record.offset, exc)
                await send_to_dead_letter(publisher, record, exc, attempts=1)
                return
            for attempt in range(1, self._retry.max_attempts + 1):
                delivery = Delivery(value=value, key=record.key, topic=record.topic,
                                    partition=record.partition, offset=record.offset,
                                    headers=headers, attempt=attempt)
                try:
                    await self._handler(delivery)
                    return
                except Exception as exc:
                    if attempt == self._retry.max_attempts:
                        logger.error("handler failed %d times on %s[%d]@%d: %s; dead-lettered",
                                     attempt, record.topic, record.partition, record.offset,
                                     exc)
                        await send_to_dead_letter(publisher, record, exc, attempts=attempt)
                        return
                    await asyncio.sleep(self._retry.delay(attempt))
