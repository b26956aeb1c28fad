"""Server-sent events for the read side (views, event feeds).

A thin layer over sse-starlette: routes yield :class:`ServerSentEvent` values from an async
iterator; keep-alive comments keep proxies from closing idle streams, and the iterator is
cancelled when the client goes away.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

KEEPALIVE_SECONDS = 15

__all__ = ["EventSourceResponse", "ServerSentEvent", "json_event", "last_event_id", "sse_response"]


def json_event(data: Any, *, event: str | None = None, id: str | None = None) -> ServerSentEvent:
    """An event whose data is ``data`` as compact JSON."""
    return ServerSentEvent(data=json.dumps(data, separators=(",", ":")), event=event, id=id)


def sse_response(
    events: AsyncIterator[ServerSentEvent], *, headers: Mapping[str, str] | None = None
) -> EventSourceResponse:
    """An ``text/event-stream`` response streaming ``events`` with keep-alives."""
    return EventSourceResponse(events, ping=KEEPALIVE_SECONDS, headers=dict(headers or {}),
                               send_timeout=30)


def last_event_id(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The resume point of an SSE client: ``Last-Event-ID`` header, else ``?last_event_id=``."""
    return headers.get("last-event-id") or query.get("last_event_id") or None
