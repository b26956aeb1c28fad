"""HTTP/SSE endpoints of the materialized views, under ``/v1/views`` (outside the protocol).

- ``GET /v1/views/{path}``: a snapshot of the live entities (``type=`` and ``key=`` narrow it;
  ``min_offset=`` waits, bounded by ``timeout=``, until the view reflects that offset — the
  offset a write returned — so a write followed by a read never sees the old value);
- ``GET /v1/views/{path}?live=sse``: the snapshot as a ``snapshot`` event, then one ``changes``
  event per batch of appends, each with an ``id`` a client resumes from (``Last-Event-ID``).
  Resuming from an offset retention no longer holds yields a ``reset`` event and a new snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from services.kernel import (
    ProblemError,
    ServerSentEvent,
    json_event,
    last_event_id,
    problem_responses,
)
from services.kernel import sse_response as kernel_sse_response
from services.streams._errors import StreamGoneError, StreamRequestError
from services.streams._offsets import format_offset, parse_offset
from services.streams._views import View, Views

VIEWS_PREFIX = "/v1/views"
MAX_WAIT_SECONDS = 30.0


class EntityOut(BaseModel):
    type: str
    key: str
    value: Any
    offset: str


class SnapshotOut(BaseModel):
    stream: str
    offset: str
    entities: list[EntityOut]


def add_view_routes(app: FastAPI, views: Callable[[], Views]) -> None:
    """Register the view endpoints on ``app``."""

    @app.get(
        VIEWS_PREFIX + "/{path:path}", tags=["views"], response_model=SnapshotOut,
        summary="Latest value per key of a State-Protocol stream (snapshot or SSE)",
        responses=problem_responses(400, 404, 410, 504),
    )
    async def view(
        request: Request,
        path: str,
        type: Annotated[str | None, Query(description="Only entities of this type")] = None,
        key: Annotated[str | None, Query(description="Only this key (with type)")] = None,
        min_offset: Annotated[str | None, Query(
            description="Wait until the view reflects this offset (read-your-writes)")] = None,
        timeout: Annotated[float, Query(gt=0, le=MAX_WAIT_SECONDS,
                                        description="Longest wait for min_offset, seconds")] = 5.0,
        live: Annotated[Literal["sse"] | None, Query(
            description="sse: stream the snapshot, then every change")] = None,
    ) -> Response:
        stream_path = "/" + path
        try:
            materialized = await views().get(stream_path)
            if min_offset is not None:
                wanted = parse_offset(min_offset)
                if wanted is None:
                    raise ProblemError(
                        400, "Invalid offset", f"malformed min_offset {min_offset!r}",
                        extensions={"errors": [{"pointer": "#/query/min_offset",
                                                "field": "query.min_offset",
                                                "message": "not an offset"}]})
                if not await materialized.wait_for(wanted, timeout):
                    raise ProblemError(504, "View not caught up",
                                       f"the view did not reach {min_offset} within {timeout:g}s")
            else:
                await materialized.catch_up()
        except StreamRequestError as exc:
            raise ProblemError(exc.status, "Stream unavailable", exc.detail) from exc
        if live == "sse":
            resume = last_event_id(request.headers, request.query_params)
            return kernel_sse_response(_events(views(), materialized, resume, type, key))
        if key is not None and type is not None:
            found = materialized.snapshot(entity_type=type, key=key)
            if not found:
                raise ProblemError(404, "No such entity", f"no {type!r} with key {key!r}")
        return JSONResponse(_snapshot(materialized, type, key))


def _snapshot(view: View, entity_type: str | None, key: str | None) -> dict[str, Any]:
    return {
        "stream": view.path,
        "offset": format_offset(view.applied),
        "entities": [
            {"type": e.type, "key": e.key, "value": e.value, "offset": format_offset(e.offset)}
            for e in view.snapshot(entity_type=entity_type, key=key)
        ],
    }


def _matches(event: dict[str, Any], entity_type: str | None, key: str | None) -> bool:
    return (entity_type is None or event.get("type") == entity_type) and (
        key is None or str(event.get("key")) == key)


async def _events(
    views: Views, view: View, resume: str | None, entity_type: str | None, key: str | None,
) -> AsyncIterator[ServerSentEvent]:
    offset = parse_offset(resume) if resume else None
    if offset is None or offset > view.applied:
        yield json_event(_snapshot(view, entity_type, key), event="snapshot",
                         id=format_offset(view.applied))
        offset = view.applied
    waited = False
    while True:
        try:
            changes = await views.read_changes(view.path, offset, live=waited)
        except StreamGoneError:
            # The client's position is older than what the log retains: start it over.
            await view.catch_up()
            yield json_event({"reason": "offset no longer retained",
                              "offset": format_offset(offset)}, event="reset")
            yield json_event(_snapshot(view, entity_type, key), event="snapshot",
                             id=format_offset(view.applied))
            offset = view.applied
            continue
        except StreamRequestError:
            return  # the stream was deleted or expired
        events = [e for e in changes.events if _matches(e, entity_type, key)]
        if changes.next_offset > offset:
            await view.catch_up()
            if events:
                yield json_event(events, event="changes", id=format_offset(changes.next_offset))
            offset = changes.next_offset
            continue
        try:
            await view.wait_for(offset + 1, 15.0)
        except StreamRequestError:
            return
        waited = True
