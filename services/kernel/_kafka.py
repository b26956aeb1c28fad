"""Kafka clients configured the NetScript way, and a traced publisher.

Producers are idempotent with ``acks="all"``: an acknowledged record is durable on the log and
a retried send is never appended twice. Library errors are translated to :class:`PublishError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.kernel._errors import KernelError
from services.kernel._settings import Settings
from services.kernel._tracing import inject_trace_headers, publish_span


class PublishError(KernelError):
    """The log did not acknowledge a record; it may not be stored."""

    def __init__(self, *, topic: str, reason: str) -> None:
        self.topic = topic
        self.reason = reason
        super().__init__(
            f"could not publish to {topic!r}: {reason}; check that the log at "
            "KAFKA_BOOTSTRAP_SERVERS is up, then retry"
        )


def create_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent, ``acks="all"`` producer on ``settings``' log (not yet started)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.service_name,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 0,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def create_consumer(
    settings: Settings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer on ``settings``' log that commits only what its caller commits."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.service_name,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


@dataclass(frozen=True, kw_only=True, slots=True)
class Published:
    """Where the log stored a record."""

    topic: str
    partition: int
    offset: int


class Publisher:
    """Writes records with a PRODUCER span and ``traceparent`` in their headers.

    ``async with Publisher(settings) as publisher: await publisher.publish(topic, value, key=k)``
    returns once the log acknowledged the record (acks=all).
    """

    def __init__(self, settings: Settings, **producer_options: Any) -> None:
        self._producer = create_producer(settings, **producer_options)
        self._state = "new"

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError("a Publisher cannot be reopened; create a new one")
        try:
            await self._producer.start()
        except KafkaError as exc:
            raise PublishError(topic="*", reason=f"cannot connect ({exc})") from exc
        self._state = "open"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush and stop; closing twice is harmless."""
        if self._state == "open":
            self._state = "closed"
            await self._producer.stop()

    @property
    def producer(self) -> AIOKafkaProducer:
        """The underlying aiokafka producer (started while the publisher is open)."""
        return self._producer

    async def publish(
        self, topic: str, value: bytes | None, *, key: bytes | None = None,
        headers: Iterable[tuple[str, bytes]] = (), partition: int | None = None,
    ) -> Published:
        """Append one record and wait for the log's acknowledgement."""
        if self._state != "open":
            raise RuntimeError("the Publisher is not open; use it as an async context manager")
        with publish_span(topic, key=key):
            try:
                meta = await self._producer.send_and_wait(
                    topic, value, key=key, partition=partition,
                    headers=inject_trace_headers(headers),
                )
            except KafkaError as exc:
                raise PublishError(topic=topic, reason=str(exc) or type(exc).__name__) from exc
        return Published(topic=meta.topic, partition=meta.partition, offset=meta.offset)
