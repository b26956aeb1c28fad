"""Every transition, mirrored into the durable stream ``/sagas/instances``.

The stream holds one ``saga_instance`` entity per instance (its latest status, the message
that moved it, when), so a browser or another service follows saga activity with the Durable
Streams protocol (:func:`services.streams._mirror.mirror_topic`: at-least-once, in a consumer
group).
"""

from __future__ import annotations

import json
from typing import Any

from services.kernel import Settings
from services.sagas._records import Transition
from services.sagas._topics import TRANSITIONS
from services.streams._mirror import Mirror, mirror_topic

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


def _entity(value: bytes | None) -> dict[str, Any] | None:
    return None if value is None else mirrored(Transition.from_json(json.loads(value)))


MIRROR = Mirror(topic=TRANSITIONS, group=GROUP, stream_path=STREAM_PATH, entity=ENTITY,
                schema=INSTANCE_SCHEMA, primary_key="instance_id", to_entity=_entity)


async def run_mirror(settings: Settings, streams_url: str, *,
                     headers: dict[str, str] | None = None) -> None:
    """Mirror transitions into ``/sagas/instances`` until cancelled (restarting from the last
    mirrored transition after a failure)."""
    await mirror_topic(MIRROR, settings, streams_url, headers=headers)
