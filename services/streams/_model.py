"""What the server knows about a stream, as stored in the catalog topic."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Self

from services.streams._writers import ProducerClaim


@dataclass(frozen=True, kw_only=True, slots=True)
class ForkOrigin:
    """Where a fork branched: its data before ``base`` is its source's data."""

    source: str  # the source stream's path
    base: int  # stream offset of the divergence point (the fork's own data starts here)
    offset: str  # Stream-Fork-Offset as requested (for idempotent re-creation)
    sub_offset: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamMeta:
    """The durable configuration and lifecycle of one stream."""

    path: str
    topic: str  # the stream's own records; a new one per incarnation of the path
    incarnation: str
    content_type: str
    created_at: float
    ttl_seconds: int | None = None
    expires_at: str | None = None  # RFC 3339, as given
    closed: bool = False
    closed_by: ProducerClaim | None = None
    fork: ForkOrigin | None = None
    soft_deleted: bool = False
    touched_at: float | None = None  # last read/write, persisted coarsely for sliding TTL

    @property
    def is_json(self) -> bool:
        return media_type(self.content_type) == "application/json"

    @property
    def expires_at_ts(self) -> float | None:
        if self.expires_at is None:
            return None
        return parse_rfc3339(self.expires_at).timestamp()

    def with_(self, **changes: Any) -> StreamMeta:
        return replace(self, **changes)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Self:
        data = json.loads(raw)
        if data.get("closed_by"):
            data["closed_by"] = ProducerClaim(**data["closed_by"])
        if data.get("fork"):
            data["fork"] = ForkOrigin(**data["fork"])
        return cls(**data)


def media_type(content_type: str) -> str:
    """The lower-cased media type without parameters (``application/json; charset=utf-8``)."""
    return content_type.split(";", 1)[0].strip().lower()


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp with a zone (``Z`` or an offset); raise ``ValueError``."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None or "T" not in text.upper():
        raise ValueError(f"not an RFC 3339 timestamp with a zone: {value!r}")
    return parsed
