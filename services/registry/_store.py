"""The ``_schemas`` topic: created compacted if missing, replayed at start, appended to.

Appends use one idempotent ``acks="all"`` producer and put all records of one operation in one
record batch, which the log stores atomically (a permanent delete and the id floor that guards
it are never half-written). The topic has one partition, so the log's order is the order of the
registry's operations.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.errors import for_code as error_for_code
from aiokafka.structs import TopicPartition

from services.registry._errors import StoreError
from services.registry._state import Record

DEFAULT_TOPIC = "_schemas"
REPLAY_TIMEOUT = 60.0
_REQUEST_TIMEOUT_MS = 15_000


class SchemaLog:
    """The registry's topic on a Kafka-compatible log; an async context manager."""

    def __init__(self, bootstrap_servers: str, *, topic: str = DEFAULT_TOPIC,
                 client_id: str = "registry") -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._client_id = client_id
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, client_id=client_id, acks="all",
            enable_idempotence=True, linger_ms=0, request_timeout_ms=_REQUEST_TIMEOUT_MS,
        )
        self._state = "new"

    @property
    def topic(self) -> str:
        return self._topic

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError("a SchemaLog cannot be reopened; create a new one")
        self._state = "open"
        try:
            await self._create_topic()
            await self._producer.start()
        except KafkaError as exc:
            await self.close()
            raise self._unavailable("connect", exc) from exc
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush and disconnect; closing twice is harmless."""
        if self._state == "open":
            self._state = "closed"
            # Closing on a dead log must not mask the error that got us here.
            with contextlib.suppress(Exception):
                await self._producer.stop()

    async def _create_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap,
                                    client_id=self._client_id + "-admin",
                                    request_timeout_ms=_REQUEST_TIMEOUT_MS)
        await admin.start()
        try:
            response = await admin.create_topics([NewTopic(
                self._topic, num_partitions=1, replication_factor=1,
                topic_configs={"cleanup.policy": "compact", "retention.ms": "-1"},
            )])
        finally:
            await admin.close()
        for _name, code, *_rest in response.topic_errors:
            error = error_for_code(code)
            if code and error is not TopicAlreadyExistsError:
                raise StoreError(
                    f"cannot create the registry topic {self._topic!r}: {error.__name__}; "
                    "check that the log accepts CreateTopics from this client"
                )

    async def replay(self) -> AsyncIterator[tuple[int, Record]]:
        """Every record of the topic from the beginning to the current end, with its offset."""
        partition = TopicPartition(self._topic, 0)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, client_id=self._client_id + "-replay",
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
        )
        try:
            await consumer.start()
            consumer.assign([partition])
            end = (await consumer.end_offsets([partition]))[partition]
            await consumer.seek_to_beginning(partition)
            deadline = time.monotonic() + REPLAY_TIMEOUT
            while await consumer.position(partition) < end:
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"replaying {self._topic!r} did not reach offset {end} within "
                        f"{REPLAY_TIMEOUT:g}s; check the log's health, then restart the registry"
                    )
                batches = await consumer.getmany(partition, timeout_ms=500)
                for message in batches.get(partition, []):
                    if message.offset >= end:
                        return
                    yield message.offset, Record(key=message.key or b"", value=message.value)
        except KafkaError as exc:
            raise self._unavailable("replay", exc) from exc
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def append(self, records: Sequence[Record]) -> None:
        """Store ``records`` as one batch; returns once the log acknowledged it (acks=all)."""
        if self._state != "open":
            raise RuntimeError("the SchemaLog is not open; use it as an async context manager")
        batch = self._producer.create_batch()
        for record in records:
            if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                raise StoreError(
                    "the operation's records do not fit one record batch; delete fewer "
                    "versions at once"
                )
        batch.close()
        try:
            future = await self._producer.send_batch(batch, self._topic, partition=0)
            await future
        except KafkaError as exc:
            raise self._unavailable("write", exc) from exc

    def _unavailable(self, action: str, exc: KafkaError) -> StoreError:
        return StoreError(
            f"Error in the backend data store: cannot {action} {self._topic!r} on the log at "
            f"{self._bootstrap} ({exc or type(exc).__name__}); check that the log at "
            "KAFKA_BOOTSTRAP_SERVERS is up, then retry"
        )
