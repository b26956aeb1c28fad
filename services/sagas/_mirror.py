"""Every transition, mirrored into the durable stream ``/sagas/instances``.

The stream holds one ``saga_instance`` entity per instance (its latest status, the message
that moved it, when), so a browser or another service follows saga activity with the Durable
Streams protocol. The mirror reads ``sagas.transitions`` in a consumer group and commits only
after the streams server acknowledged the upserts: at-least-once, and an upsert repeated
after a crash writes the same latest value again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiokafka.errors import KafkaError

from services.kernel import Settings, create_consumer
from services.sagas._records import Transition
from services.sagas._topics import TRANSITIONS

log = logging.getLogger("netscript.sagas.mirror")

STREAM_PATH = "/sagas/instances"
ENTITY = "saga_instance"
GROUP = "netscript-sagas-stream-mirror"

INSTANCE_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "SagaInstanceStatus", "namespace": "netscript.sagas",
    "fields": [
        {"name": "instance_id", "type": "string"},
        {"name": "saga_id", "type": "string"},
        {"name": "correlation_key", "type": "string"},
        {"name": "status", "type": "string"},
        {"name": "event", "type": "string"},
        {"name": "message_type", "type": "string"},
        {"name": "version", "type": "long"},
        {"name": "at", "type": "string"},
        {"name": "reason", "type": ["null", "string"], "default": None},
    ],
}


def mirrored(transition: Transition) -> dict[str, Any]:
    """The entity ``transition`` leaves in the stream."""
    return {"instance_id": transition.instance_id, "saga_id": transition.saga_id,
            "correlation_key": transition.correlation_key, "status": transition.to_status,
            "event": transition.event, "message_type": transition.message_type,
            "version": transition.version, "at": transition.at, "reason": transition.reason}


async def run_mirror(settings: Settings, streams_url: str, *,
                     headers: dict[str, str] | None = None) -> None:
    """Mirror transitions into ``/sagas/instances`` until cancelled; a failure (the log or
    the streams server away) restarts from the last committed transition."""
    from services.streams import StreamsError

    while True:
        try:
            await _mirror(settings, streams_url, headers)
        except (KafkaError, OSError, StreamsError) as exc:
            log.warning("sagas mirror: %s; restarting from the last mirrored transition", exc)
            await asyncio.sleep(2)


async def _mirror(settings: Settings, streams_url: str, headers: dict[str, str] | None) -> None:
    import uuid

    from services.streams import create_durable_stream, define_stream_schema

    schema = define_stream_schema({ENTITY: {"schema": INSTANCE_SCHEMA, "type": ENTITY,
                                            "primary_key": "instance_id"}})
    producer = create_durable_stream(stream_path=STREAM_PATH, schema=schema,
                                     producer_id=f"sagas-mirror-{uuid.uuid4().hex[:12]}",
                                     base_url=streams_url, headers=headers)
    consumer = create_consumer(settings, TRANSITIONS, group_id=GROUP)
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            if not batches:
                continue
            for records in batches.values():
                for record in records:
                    try:
                        transition = Transition.from_json(json.loads(record.value))
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning("sagas mirror: skipping bad transition: %s", exc)
                        continue
                    producer.upsert(ENTITY, mirrored(transition))
            await producer.flush()
            await consumer.commit()
    finally:
        with contextlib.suppress(Exception):
            await producer.close()
        await consumer.stop()
