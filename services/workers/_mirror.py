"""Every execution change, mirrored into the durable stream ``/workers/executions``.

The stream holds one ``job_execution`` entity per execution (its status, lane, pool, attempt,
progress, error), so a browser or another service follows job activity with the Durable
Streams protocol. The mirror reads the executions changelog in a consumer group and commits
only after the streams server acknowledged the upserts: at-least-once, and an upsert repeated
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
from services.workers._records import Execution
from services.workers._topics import EXECUTIONS_CHANGELOG

log = logging.getLogger("netscript.workers.mirror")

STREAM_PATH = "/workers/executions"
ENTITY = "job_execution"
GROUP = "netscript-workers-stream-mirror"

EXECUTION_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "JobExecutionStatus", "namespace": "netscript.workers",
    "fields": [
        {"name": "execution_id", "type": "string"},
        {"name": "job_id", "type": "string"},
        {"name": "lane", "type": "string"},
        {"name": "status", "type": "string"},
        {"name": "attempt", "type": "long"},
        {"name": "pool", "type": ["null", "string"], "default": None},
        {"name": "progress", "type": ["null", "string"], "default": None},
        {"name": "stuck", "type": "boolean", "default": False},
        {"name": "error", "type": ["null", "string"], "default": None},
        {"name": "version", "type": "long"},
        {"name": "updated_at", "type": "long"},
    ],
}


def mirrored(execution: Execution) -> dict[str, Any]:
    """The entity ``execution`` leaves in the stream (progress as JSON text)."""
    return {"execution_id": execution.execution_id, "job_id": execution.job_id,
            "lane": execution.lane, "status": execution.status, "attempt": execution.attempt,
            "pool": execution.pool,
            "progress": None if execution.progress is None else json.dumps(execution.progress),
            "stuck": execution.stuck, "error": execution.error, "version": execution.version,
            "updated_at": execution.updated_at}


async def run_mirror(settings: Settings, streams_url: str, *,
                     headers: dict[str, str] | None = None) -> None:
    """Mirror execution changes into ``/workers/executions`` until cancelled; a failure (the
    log or the streams server away) restarts from the last mirrored change."""
    from services.streams import StreamsError

    while True:
        try:
            await _mirror(settings, streams_url, headers)
        except (KafkaError, OSError, StreamsError) as exc:
            log.warning("workers mirror: %s; restarting from the last mirrored change", exc)
            await asyncio.sleep(2)


async def _mirror(settings: Settings, streams_url: str, headers: dict[str, str] | None) -> None:
    import uuid

    from services.streams import create_durable_stream, define_stream_schema

    schema = define_stream_schema({ENTITY: {"schema": EXECUTION_SCHEMA, "type": ENTITY,
                                            "primary_key": "execution_id"}})
    producer = create_durable_stream(stream_path=STREAM_PATH, schema=schema,
                                     producer_id=f"workers-mirror-{uuid.uuid4().hex[:12]}",
                                     base_url=streams_url, headers=headers)
    consumer = create_consumer(settings, EXECUTIONS_CHANGELOG, group_id=GROUP)
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            if not batches:
                continue
            for records in batches.values():
                for record in records:
                    if record.value is None:
                        continue
                    try:
                        execution = Execution.from_json(json.loads(record.value))
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning("workers mirror: skipping a bad execution: %s", exc)
                        continue
                    producer.upsert(ENTITY, mirrored(execution))
            await producer.flush()
            await consumer.commit()
    finally:
        with contextlib.suppress(Exception):
            await producer.close()
        await consumer.stop()
