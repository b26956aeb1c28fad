"""Reading a stream from Python: ``subscribe`` (live or catch-up) and a latest-value view."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.streams._errors import StreamWriteError
from services.streams._urls import build_stream_url, get_streams_auth


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamChunk:
    """Messages read from ``offset``; resume from ``next_offset``."""

    messages: list[Any]
    offset: str
    next_offset: str
    up_to_date: bool
    closed: bool


async def subscribe(
    stream_path: str, *, offset: str = "-1", live: bool = True, base_url: str | None = None,
    headers: Mapping[str, str] | None = None, client: httpx.AsyncClient | None = None,
) -> AsyncIterator[StreamChunk]:
    """Chunks of a JSON stream from ``offset`` (``-1``: the start, ``now``: the tail).

    With ``live`` it long-polls for new data after catching up and ends only when the stream
    is closed; without, it ends once up to date. Persist ``next_offset`` to resume later.
    """
    url = build_stream_url(stream_path, base_url)
    request_headers = {**get_streams_auth(), **dict(headers or {})}
    own = client is None
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(60.0))
    try:
        while True:
            params = {"offset": offset}
            if live and offset != "-1":
                params["live"] = "long-poll"
            response = await http.get(url, params=params, headers=request_headers)
            if response.status_code not in (200, 204):
                raise StreamWriteError(stream_path=stream_path,
                                       reason=f"read answered {response.status_code}")
            next_offset = response.headers.get("stream-next-offset", offset)
            up_to_date = response.headers.get("stream-up-to-date") == "true"
            closed = response.headers.get("stream-closed") == "true"
            messages = response.json() if response.status_code == 200 and response.content else []
            if messages or closed or not live:
                yield StreamChunk(messages=messages, offset=offset, next_offset=next_offset,
                                  up_to_date=up_to_date, closed=closed)
            offset = next_offset
            if closed or (up_to_date and not live):
                return
    finally:
        if own:
            await http.aclose()


@dataclass(kw_only=True, slots=True)
class LatestValues:
    """The latest value per ``(type, key)`` of a State-Protocol stream."""

    entities: dict[tuple[str, str], Any] = field(default_factory=dict)

    def apply(self, event: Mapping[str, Any]) -> None:
        """Apply one change event (``delete`` removes, any other operation sets the value)."""
        key = (str(event.get("type")), str(event.get("key")))
        operation = (event.get("headers") or {}).get("operation")
        if operation == "delete":
            self.entities.pop(key, None)
        elif "value" in event:
            self.entities[key] = event["value"]

    def of_type(self, entity_type: str) -> dict[str, Any]:
        return {key: value for (kind, key), value in self.entities.items() if kind == entity_type}


def inspect_stream_topic(
    *, schema: Any, stream_path: str | None = None, producer_id: str | None = None,
) -> dict[str, Any]:
    """A JSON-stable diagnostic report of a stream schema and its producer metadata."""
    collections = {
        name: {
            "type": collection.type,
            "primary_key": collection.primary_key,
            "schema": (collection.schema.__name__ if isinstance(collection.schema, type)
                       else str(collection.schema.get("name", "avro"))),
        }
        for name, collection in sorted(schema.collections.items())
    }
    report = {
        "package": "services.streams",
        "target": stream_path or "(unbound schema)",
        "summary": f"{len(collections)} collection(s)"
                   + (f" written to {stream_path}" if stream_path else ""),
        "details": {"collections": collections, "stream_path": stream_path,
                    "producer_id": producer_id},
    }
    stable: dict[str, Any] = json.loads(json.dumps(report, sort_keys=True))
    return stable
