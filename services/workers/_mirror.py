"""Every execution change, mirrored into the durable stream ``/workers/executions``.

The stream holds one ``job_execution`` entity per execution (its status, lane, pool, attempt,
progress, error), so a browser or another service follows job activity with the Durable
Streams protocol (:func:`services.streams._mirror.mirror_topic`: at-least-once, in a consumer
group).
"""

from __future__ import annotations

import json
from typing import Any

from services.kernel import Settings
from services.streams._mirror import Mirror, mirror_topic
from services.workers._records import Execution
from services.workers._topics import EXECUTIONS_CHANGELOG

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


def _entity(value: bytes | None) -> dict[str, Any] | None:
    return None if value is None else mirrored(Execution.from_json(json.loads(value)))


MIRROR = Mirror(topic=EXECUTIONS_CHANGELOG, group=GROUP, stream_path=STREAM_PATH,
                entity=ENTITY, schema=EXECUTION_SCHEMA, primary_key="execution_id",
                to_entity=_entity)


async def run_mirror(settings: Settings, streams_url: str, *,
                     headers: dict[str, str] | None = None) -> None:
    """Mirror execution changes into ``/workers/executions`` until cancelled (restarting from
    the last mirrored change after a failure)."""
    await mirror_topic(MIRROR, settings, streams_url, headers=headers)
