"""Mirror a topic into a durable stream: the read side of a processor, for browsers.

:func:`mirror_topic` reads a topic in a consumer group (committed records only) and upserts one
entity per record into a durable stream through the producer library, committing the group's
offsets only after the streams server acknowledged the upserts: at-least-once, and an upsert
repeated after a crash writes the same latest value again. A failure (the log or the streams
server away) restarts it from the last committed record. The sagas API mirrors
``sagas.transitions`` into ``/sagas/instances`` with it, the workers API the executions
changelog into ``/workers/executions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError

from services.kernel import Settings, create_consumer

log = logging.getLogger("netscript.streams.mirror")


@dataclass(frozen=True, kw_only=True, slots=True)
class Mirror:
    """What to mirror: ``topic`` (read in ``group``) into ``stream_path`` as ``entity``
    values of Avro ``schema`` keyed by ``primary_key``. ``to_entity`` turns a record value
    into the entity (``None``: skip the record; raising ``ValueError``/``KeyError``/
    ``TypeError``: a bad record, logged and skipped)."""

    topic: str
    group: str
    stream_path: str
    entity: str
    schema: Mapping[str, Any]
    primary_key: str
    to_entity: Callable[[bytes | None], Mapping[str, Any] | None]


async def mirror_topic(mirror: Mirror, settings: Settings, streams_url: str, *,
                       headers: dict[str, str] | None = None,
                       retry_seconds: float = 2.0) -> None:
    """Mirror until cancelled (see the module docstring)."""
    from services.streams._errors import StreamsError

    while True:
        try:
            await _run(mirror, settings, streams_url, headers)
        except (KafkaError, OSError, StreamsError) as exc:
            log.warning("mirror of %s into %s: %s; restarting from the last mirrored record",
                        mirror.topic, mirror.stream_path, exc)
            await asyncio.sleep(retry_seconds)


async def _run(mirror: Mirror, settings: Settings, streams_url: str,
               headers: dict[str, str] | None) -> None:
    from services.streams._producer import create_durable_stream
    from services.streams._schema import define_stream_schema

    schema = define_stream_schema({mirror.entity: {
        "schema": dict(mirror.schema), "type": mirror.entity,
        "primary_key": mirror.primary_key}})
    producer = create_durable_stream(
        stream_path=mirror.stream_path, schema=schema,
        producer_id=f"{mirror.group}-{uuid.uuid4().hex[:12]}", base_url=streams_url,
        headers=headers)
    consumer = create_consumer(settings, mirror.topic, group_id=mirror.group)
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            if not batches:
                continue
            for records in batches.values():
                for record in records:
                    try:
                        entity = mirror.to_entity(record.value)
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning("mirror of %s: skipping a bad record at offset %d: %s",
                                    mirror.topic, record.offset, exc)
                        continue
                    if entity is not None:
                        producer.upsert(mirror.entity, dict(entity))
            await producer.flush()
            await consumer.commit()
    finally:
        with contextlib.suppress(Exception):
            await producer.close()
        await consumer.stop()
