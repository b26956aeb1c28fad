"""The sagas API on :8092 (FastAPI): registered sagas, instances, publish, and an SSE feed.

Writes go to the saga bus (the runtime applies them); reads come from the store's
materialized views. A publish receipt carries the ``position`` of its bus records; pass it as
``?after=`` to a read to see the instance once the runtime applied them (read-your-writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.kernel import (
    ProblemError,
    Publisher,
    PublishError,
    ServerSentEvent,
    Settings,
    create_app,
    ensure_topics,
    json_event,
    kafka_ready,
    last_event_id,
    problem_responses,
    sse_response,
)
from services.sagas._engine import Route, SagaEngine, instance_id_for
from services.sagas._errors import (
    MissingCorrelationKeyError,
    SagaError,
    UnknownMessageTypeError,
    UnknownSagaError,
)
from services.sagas._messages import SagaMessage
from services.sagas._records import Status, bus_value
from services.sagas._store import SagaStore
from services.sagas._topics import BUS, DEFAULT_PARTITIONS, topic_configs
from services.sagas._views import TransitionFeed, parse_positions

PORT = 8092
PREFIX = "/api/v1/sagas"
READ_WAIT_SECONDS = 10.0
SSE_EVENTS = frozenset({"saga:started", "saga:state_changed", "saga:completed", "saga:failed",
                        "saga:compensating"})


class PublishRequest(BaseModel):
    """A message for the saga bus (the seed's ``SagaMessage``, snake_case)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, description="The message type; selects the handler.")
    payload: dict[str, Any] = Field(default_factory=dict)
    correlation_key: str | None = Field(
        default=None, min_length=1,
        description="The instance; derived by the saga's correlation rule when absent.")
    idempotency_key: str | None = Field(
        default=None, min_length=1, description="A redelivery with the same key is dropped.")
    concurrency_key: str | None = None
    occurred_at: datetime | None = None
    traceparent: str | None = None
    saga: str | None = Field(default=None, description="Deliver to this saga only.")


class Delivery(BaseModel):
    saga_id: str
    correlation_key: str
    instance_id: str
    partition: int
    offset: int


class PublishReceipt(BaseModel):
    """The runtime will apply the message: where it was stored, and how to read after it."""

    published: bool = True
    message_id: str
    type: str
    deliveries: list[Delivery]
    partition: int
    offset: int
    position: str = Field(description="Pass as ?after= to read once the runtime applied it.")


@dataclass(kw_only=True, slots=True)
class _Inflight:
    """The app's publisher, and published-but-not-applied bus positions per concurrency key
    (``.concurrency()``)."""

    by_key: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)
    publisher: Publisher | None = None


def create_sagas_app(settings: Settings, engine: SagaEngine, store: SagaStore, *,
                     feed: TransitionFeed, partitions: int = DEFAULT_PARTITIONS,
                     store_backend: str = "kv", mirror: bool = True) -> FastAPI:
    """The :8092 app over ``engine``'s definitions; the app's lifespan opens ``feed`` and
    ``store`` (when it is an async context manager) and, with ``mirror`` and a streams URL in
    ``settings``, mirrors every transition into the durable stream ``/sagas/instances``."""
    inflight = _Inflight()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(settings.kafka_bootstrap_servers, topic_configs(partitions))
        async with contextlib.AsyncExitStack() as stack:
            # Created here: aiokafka binds its producer to the running loop.
            inflight.publisher = await stack.enter_async_context(Publisher(settings))
            await feed.start()
            stack.push_async_callback(feed.close)
            if hasattr(store, "__aenter__"):
                await stack.enter_async_context(store)  # type: ignore[arg-type]
            streams_url = settings.service_urls.get("streams")
            if mirror and streams_url:
                from services.sagas._mirror import run_mirror

                task = asyncio.create_task(run_mirror(settings, streams_url), name="mirror")
                stack.push_async_callback(_cancel, task)
            yield

    async def views_ready() -> None:
        if feed.failed is not None:
            raise RuntimeError(f"the transitions view stopped: {feed.failed}")
        if not feed.caught_up.is_set():
            raise RuntimeError("the transitions view is still reading the log")

    app = create_app(
        title="NetScript sagas", settings=settings,
        description="Durable sagas: registered definitions, instances, publish, activity.",
        readiness={"log": kafka_ready(settings), "views": views_ready}, lifespan=lifespan)

    async def wait_after(after: str | None) -> None:
        if not after:
            return
        try:
            positions = parse_positions(after)
        except SagaError as exc:
            raise _invalid("after", str(exc)) from None
        deadline = asyncio.get_running_loop().time() + READ_WAIT_SECONDS
        while True:
            results = [await store.applied(p, o) for p, o in positions]
            if all(results):
                return
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise ProblemError(
                    504, "Not applied yet",
                    f"the saga runtime has not applied position {after} within "
                    f"{READ_WAIT_SECONDS:g}s; is `netscript sagas run` running?",
                    headers={"Retry-After": "1"})
            await feed.wait_applied(positions, min(remaining, 0.25))

    @app.get(f"{PREFIX}/sagas", tags=["sagas"], summary="Registered saga definitions")
    async def list_sagas() -> list[dict[str, Any]]:
        out = []
        for definition in engine.definitions.values():
            payloads = definition.payloads or {}
            out.append({
                "id": definition.id, "name": definition.id, "topic": BUS,
                "message_types": sorted(definition.handlers),
                "compensations": sorted(definition.compensations),
                "start_types": sorted(definition.start_types),
                "durability": definition.durability, "schedule": definition.schedule,
                "payload_schemas": {t: s.name for t, s in sorted(payloads.items())},
                "store": store_backend, "enabled": True,
            })
        return out

    @app.get(f"{PREFIX}/instances", tags=["instances"], summary="Saga instances, paged",
             responses=problem_responses(400, 422, 504))
    async def list_instances(
        saga: Annotated[str | None, Query(description="Only this saga's instances.")] = None,
        status: Annotated[Status | None, Query()] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        after: Annotated[str | None, Query(description="A publish receipt's position.")
                         ] = None,
    ) -> dict[str, Any]:
        if saga is not None and saga not in engine.definitions:
            raise _unknown_saga(saga, engine)
        await wait_after(after)
        page = await store.list(saga_id=saga, status=status, offset=offset, limit=limit)
        return {"items": [i.summary() for i in page.items], "total": page.total,
                "offset": offset, "limit": limit}

    @app.get(f"{PREFIX}/instances/{{saga_name}}/{{correlation_id}}", tags=["instances"],
             summary="One instance: its state and transition history",
             responses=problem_responses(404, 422, 504))
    async def get_instance(saga_name: str, correlation_id: str,
                           after: Annotated[str | None, Query()] = None) -> dict[str, Any]:
        if saga_name not in engine.definitions:
            raise _unknown_saga(saga_name, engine)
        await wait_after(after)
        instance = await store.get(saga_name, correlation_id)
        if instance is None:
            raise ProblemError(404, "No such instance",
                               f"saga {saga_name!r} has no instance {correlation_id!r} (yet): "
                               "publish a message that starts it, or pass ?after= with the "
                               "receipt's position to wait for the runtime")
        history = await store.history(saga_name, correlation_id)
        return {**instance.summary(), "history": [t.to_json() for t in history]}

    @app.post(f"{PREFIX}/publish", tags=["publish"], status_code=202,
              summary="Publish a message to the saga bus", response_model=PublishReceipt,
              responses=problem_responses(409, 422, 503))
    async def publish(body: PublishRequest) -> JSONResponse:
        message = SagaMessage(
            type=body.type, payload=body.payload, correlation_key=body.correlation_key,
            idempotency_key=body.idempotency_key, concurrency_key=body.concurrency_key,
            occurred_at=body.occurred_at, traceparent=body.traceparent)
        routes = _route(engine, message, body.saga)
        limited = [_check_concurrency(engine, inflight, route, message) for route in routes]
        deliveries = []
        for route in routes:
            delivered = replace(message, correlation_key=route.correlation_key)
            try:
                assert inflight.publisher is not None, "the app's lifespan has not run"
                stored = await inflight.publisher.publish(
                    BUS, json.dumps(bus_value(route.saga_id, delivered)).encode(),
                    key=route.key.encode())
            except PublishError as exc:
                raise ProblemError(503, "Log unavailable",
                                   f"the message was not stored: {exc.reason}",
                                   headers={"Retry-After": "1"}) from exc
            deliveries.append(Delivery(
                saga_id=route.saga_id, correlation_key=route.correlation_key,
                instance_id=instance_id_for(route.saga_id, route.correlation_key),
                partition=stored.partition, offset=stored.offset))
        for key, delivery in zip(limited, deliveries, strict=True):
            if key is not None:
                inflight.by_key.setdefault(key, []).append((delivery.partition,
                                                            delivery.offset))
        receipt = PublishReceipt(
            message_id=str(uuid.uuid4()), type=message.type, deliveries=deliveries,
            partition=deliveries[0].partition, offset=deliveries[0].offset,
            position=",".join(f"{d.partition}:{d.offset}" for d in deliveries))
        return JSONResponse(receipt.model_dump(), status_code=202)

    def _check_concurrency(engine: SagaEngine, inflight: _Inflight, route: Route,
                           message: SagaMessage) -> tuple[str, str] | None:
        limit = engine.definition(route.saga_id).concurrency
        if limit is None:
            return None
        key = (route.saga_id, limit.key(message) if limit.key else (
            message.concurrency_key or route.correlation_key))
        pending = [(p, o) for p, o in inflight.by_key.get(key, []) if not feed.applied(p, o)]
        inflight.by_key[key] = pending
        if len(pending) >= limit.limit:
            raise ProblemError(
                409, "Concurrency limit reached",
                f"saga {route.saga_id!r} allows {limit.limit} message(s) in flight for key "
                f"{key[1]!r}; {len(pending)} not applied yet — retry shortly",
                extensions={"published": False, "retryable": True,
                            "reason": "concurrency_limit", "concurrency_key": key[1]},
                headers={"Retry-After": "1"})
        return key

    @app.get(f"{PREFIX}/subscribe", tags=["activity"], summary="Saga activity (SSE)",
             response_class=JSONResponse, responses=problem_responses(422))
    async def subscribe(request: Request,
                        saga: Annotated[str | None, Query()] = None) -> Any:
        if saga is not None and saga not in engine.definitions:
            raise _unknown_saga(saga, engine)
        resume = last_event_id(request.headers, request.query_params)
        # An event id is where the feed stood after it: the next offset of each partition of
        # sagas.transitions ("0:15,1:7"), so resuming skips exactly what the client has seen.
        if resume is None:
            start, seen = len(feed.entries), feed.ends()
        else:
            try:
                seen = dict(parse_positions(resume))
            except SagaError:
                raise _invalid("Last-Event-ID", "an event id from this stream, e.g. '0:15,1:7'"
                               ) from None
            start = 0

        async def events() -> AsyncIterator[ServerSentEvent]:
            async for _index, entry in feed.follow(start):
                if entry.offset < seen.get(entry.partition, 0):
                    continue
                seen[entry.partition] = entry.offset + 1
                transition = entry.transition
                if transition.event not in SSE_EVENTS or (
                        saga is not None and transition.saga_id != saga):
                    continue
                event_id = ",".join(f"{p}:{o}" for p, o in sorted(seen.items()))
                yield json_event(transition.to_json(), event=transition.event, id=event_id)

        return sse_response(events())

    return app


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _route(engine: SagaEngine, message: SagaMessage, saga: str | None) -> list[Route]:
    try:
        routes = engine.route(message, saga)
    except UnknownSagaError as exc:
        raise _invalid("saga", str(exc)) from None
    except UnknownMessageTypeError as exc:
        raise _invalid("type", str(exc)) from None
    except MissingCorrelationKeyError as exc:
        raise _invalid("correlation_key", str(exc)) from None
    for route in routes:
        issues = engine.payload_issues(route.saga_id, message)
        if issues:
            raise ProblemError(
                422, "Invalid payload",
                f"the {message.type!r} payload does not fit its schema: "
                + "; ".join(f"{i.field}: {i.detail}" for i in issues),
                extensions={"errors": [
                    {"pointer": f"#/body/payload/{i.field.replace('.', '/')}",
                     "field": f"body.payload.{i.field}", "message": i.detail}
                    for i in issues]})
    return routes


def _invalid(name: str, message: str) -> ProblemError:
    pointer = "#/body/" + name if name in PublishRequest.model_fields else "#/" + name
    return ProblemError(422, "Invalid request", message, extensions={
        "errors": [{"pointer": pointer, "field": f"body.{name}", "message": message}]})


def _unknown_saga(saga: str, engine: SagaEngine) -> ProblemError:
    return ProblemError(404, "No such saga",
                        f"no saga {saga!r} is registered; registered: "
                        f"{', '.join(engine.definitions)}")
