"""Topic names for streams: paths are arbitrary, topic names are ``[A-Za-z0-9._-]{1,249}``."""

from __future__ import annotations

import hashlib
import re

STREAM_TOPIC_PREFIX = "ds."
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def topic_for(path: str, incarnation: str) -> str:
    """A readable, unique topic name for one incarnation of the stream at ``path``.

    A deleted and re-created path gets a new topic, so no reader of the old stream ever sees
    the new one's data under an old offset.
    """
    readable = _UNSAFE.sub("-", path).strip("-")[:80] or "root"
    digest = hashlib.sha256(path.encode()).hexdigest()[:12]
    return f"{STREAM_TOPIC_PREFIX}{readable}.{digest}.{incarnation[:12]}"


def view_topic_for(stream_topic: str) -> str:
    """The compacted changelog topic of a stream incarnation's materialized view."""
    return stream_topic + ".view"
