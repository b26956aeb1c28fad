"""The workers API on :8091 (FastAPI): registered jobs, triggers, executions, pools, seed.

Writes go to the log (a trigger appends a job request to its lane; a cancel appends a command;
the dispatcher decides); reads come from :class:`ExecutionsView`, the executions and pools
changelogs materialized in this process. A lane whose backlog reached its limit answers 429
with ``Retry-After`` while the other lane still accepts (admission control).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.kernel import (
    ProblemError,
    PublishError,
    ServerSentEvent,
    Settings,
    create_app,
    ensure_topics,
    json_event,
    kafka_ready,
    last_event_id,
    sse_response,
)
from services.workers._errors import JobPayloadError
from services.workers._jobs import LANES, JobDefinition, Lane
from services.workers._records import TERMINAL, Execution
from services.workers._topics import topic_configs
from services.workers._trigger import JobClient
from services.workers._views import ExecutionsView

PORT = 8091
PREFIX = "/api/v1/workers"
DEFAULT_LANE_LIMITS: Mapping[Lane, int] = {"normal": 100_000, "urgent": 10_000}
MAX_WAIT_SECONDS = 30.0


class TriggerReceipt(BaseModel):
    """The request is on the log; the dispatcher will lease it."""

    execution_id: str
    job_id: str
    lane: Lane
    status: str = "queued"
    partition: int
    offset: int
    location: str


class SeedRequest(BaseModel):
    count: int = Field(default=3, ge=1, le=100, description="Triggers of each demo job.")


def execution_json(execution: Execution) -> dict[str, Any]:
    """An execution as the API shows it (times in ms since the Unix epoch)."""
    return execution.to_json()


def create_workers_app(settings: Settings, jobs: Sequence[JobDefinition[Any]], *,
                       lane_limits: Mapping[Lane, int] | None = None,
                       mirror: bool = True) -> FastAPI:
    """The :8091 app for ``jobs``; its lifespan starts the view, the trigger client and —
    with ``mirror`` and a streams URL in ``settings`` — the ``/workers/executions`` mirror."""
    limits = {**DEFAULT_LANE_LIMITS, **(lane_limits or {})}
    registry = {job.id: job for job in jobs}
    view = ExecutionsView(settings.kafka_bootstrap_servers)
    state: dict[str, JobClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(settings.kafka_bootstrap_servers, topic_configs())
        async with contextlib.AsyncExitStack() as stack:
            state["client"] = await stack.enter_async_context(JobClient(jobs, settings))
            await view.start()
            stack.push_async_callback(view.close)
            streams_url = settings.service_urls.get("streams")
            if mirror and streams_url:
                from services.workers._mirror import run_mirror

                task = asyncio.create_task(run_mirror(settings, streams_url), name="mirror")
                stack.push_async_callback(_cancel, task)
            yield

    async def views_ready() -> None:
        if view.failed is not None:
            raise RuntimeError(f"the executions view cannot read the log: {view.failed}")
        if not view.caught_up.is_set():
            raise RuntimeError("the executions view is still reading the log")

    app = create_app(
        title="NetScript workers", settings=settings,
        description="Background jobs: registered jobs, triggers, executions, worker pools.",
        readiness={"log": kafka_ready(settings), "views": views_ready}, lifespan=lifespan)

    def client() -> JobClient:
        assert "client" in state, "the app's lifespan has not run"
        return state["client"]

    def job_or_404(job_id: str) -> JobDefinition[Any]:
        job = registry.get(job_id)
        if job is None:
            raise ProblemError(404, "No such job",
                               f"no job {job_id!r} is registered; registered: "
                               f"{', '.join(sorted(registry)) or 'none'}")
        return job

    def admit(lane: Lane) -> None:
        backlog, limit = view.queued(lane), limits[lane]
        if backlog >= limit:
            others = [f"{other} ({view.queued(other)}/{limits[other]})"
                      for other in LANES if other != lane]
            raise ProblemError(
                429, "Lane over its limit",
                f"the {lane} lane holds {backlog} queued executions (limit {limit}); retry "
                f"later. The other lane accepts: {', '.join(others)}",
                headers={"Retry-After": "2"},
                extensions={"lane": lane, "backlog": backlog, "limit": limit})

    async def append(requests: list[Any]) -> list[Any]:
        try:
            return await client().append(requests)
        except PublishError as exc:
            raise ProblemError(503, "Log unavailable",
                               f"the job request was not stored: {exc}",
                               headers={"Retry-After": "1"}) from exc

    @app.get(f"{PREFIX}/jobs", tags=["jobs"], summary="Registered jobs")
    async def list_jobs() -> list[dict[str, Any]]:
        return [{"id": job.id, "lane": job.lane, "description": job.description,
                 "retry": {"max_attempts": job.retry.max_attempts, "backoff": job.retry.backoff,
                           "multiplier": job.retry.multiplier,
                           "max_backoff": job.retry.max_backoff},
                 "timeout": job.timeout, "stuck_after": job.stuck_after,
                 "preempt_stuck": job.preempt_stuck, "payload_schema": job.payload_schema()}
                for job in registry.values()]

    @app.post(f"{PREFIX}/jobs/{{job_id}}/trigger", tags=["jobs"], status_code=202,
              summary="Trigger a job (the body is its payload)",
              responses={404: {"description": "No such job"},
                         422: {"description": "The payload does not validate"},
                         429: {"description": "The lane is over its backlog limit"},
                         503: {"description": "The log did not store the request"}})
    async def trigger(job_id: str, request: Request,
                      lane: Annotated[Lane | None, Query(description="Override the job's lane")
                                      ] = None,
                      idempotency_key: Annotated[str | None, Header(
                          alias="Idempotency-Key", min_length=1, max_length=200)] = None,
                      ) -> JSONResponse:
        job = job_or_404(job_id)
        body = await request.body()
        try:
            payload = await request.json() if body.strip() else None
        except ValueError:
            raise ProblemError(422, "Invalid JSON", "the body is not JSON", extensions={
                "errors": [{"pointer": "#/body", "field": "body",
                            "message": "the body is not JSON"}]}) from None
        chosen: Lane = lane or job.lane
        try:
            prepared = client().request(job, payload, lane=chosen,
                                        idempotency_key=idempotency_key)
        except JobPayloadError as exc:
            raise ProblemError(422, "Invalid payload", str(exc), extensions={"errors": [
                {"pointer": "#/body/" + "/".join(str(p) for p in e.get("loc", ())),
                 "field": ".".join(["body", *(str(p) for p in e.get("loc", ()))]),
                 "message": e["message"]} for e in exc.errors]}) from None
        known = view.get(prepared.execution_id)
        if known is None:
            admit(chosen)
            [receipt] = await append([prepared])
            partition, offset = receipt.partition, receipt.offset
        else:  # the same idempotency key: the execution it created
            partition, offset = -1, -1
        location = f"{PREFIX}/executions/{prepared.execution_id}"
        answer = TriggerReceipt(execution_id=prepared.execution_id, job_id=job.id,
                                lane=chosen, partition=partition, offset=offset,
                                status=known.status if known else "queued", location=location)
        return JSONResponse(answer.model_dump(), status_code=202,
                            headers={"Location": location})

    @app.get(f"{PREFIX}/executions", tags=["executions"], summary="Executions, newest first")
    async def list_executions(
            status: Annotated[str | None, Query()] = None,
            job_id: Annotated[str | None, Query()] = None,
            lane: Annotated[Lane | None, Query()] = None,
            pool: Annotated[str | None, Query()] = None,
            limit: Annotated[int, Query(ge=1, le=500)] = 50,
            cursor: Annotated[str | None, Query(description="next_cursor of a previous page")
                              ] = None) -> dict[str, Any]:
        start = 0
        if cursor:
            try:
                start = int(cursor)
            except ValueError:
                raise ProblemError(422, "Invalid cursor", "pass a next_cursor back as is",
                                   extensions={"errors": [{"pointer": "#/query/cursor",
                                                           "field": "query.cursor",
                                                           "message": "not a cursor"}]}
                                   ) from None
        found = view.select(status=status, job_id=job_id, lane=lane, pool=pool)
        page = found[start:start + limit]
        more = start + limit < len(found)
        return {"items": [execution_json(e) for e in page], "total": len(found),
                "next_cursor": str(start + limit) if more else None}

    @app.get(f"{PREFIX}/executions/stream", tags=["executions"],
             summary="Execution changes (SSE, resumable with Last-Event-ID)")
    async def stream(request: Request) -> Any:
        resume = last_event_id(request.headers, request.query_params)
        after: int | None = None
        if resume is not None:
            try:
                after = int(resume)
            except ValueError:
                raise ProblemError(422, "Invalid Last-Event-ID",
                                   "pass back the id of an event of this stream") from None

        async def events() -> AsyncIterator[ServerSentEvent]:
            async for change in view.changes(after):
                yield json_event(execution_json(change.execution), event="execution",
                                 id=str(change.offset))

        return sse_response(events())

    @app.get(f"{PREFIX}/executions/{{execution_id}}", tags=["executions"],
             summary="One execution", responses={404: {"description": "Unknown execution"}})
    async def get_execution(
            execution_id: str,
            wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS,
                                         description="Seconds to wait for it to appear (or "
                                                     "reach `until`)")] = 0,
            until: Annotated[str | None, Query(description="A status to wait for; "
                                                           "'terminal' for any end")] = None,
    ) -> dict[str, Any]:
        def reached(execution: Execution) -> bool:
            if until is None:
                return True
            return execution.status in TERMINAL if until == "terminal" else (
                execution.status == until)

        execution = view.get(execution_id)
        if (execution is None or not reached(execution)) and wait > 0:
            execution = await view.wait_for(execution_id, reached, wait) or view.get(
                execution_id)
        if execution is None:
            raise ProblemError(404, "No such execution",
                               f"no execution {execution_id!r} (yet): a trigger is visible "
                               "once the dispatcher queued it; pass ?wait=5 to wait for it")
        return execution_json(execution)

    @app.post(f"{PREFIX}/executions/{{execution_id}}/cancel", tags=["executions"],
              status_code=202, summary="Cancel a queued or running execution")
    async def cancel(execution_id: str,
                     reason: Annotated[str, Query(max_length=500)] = "") -> dict[str, Any]:
        execution = view.get(execution_id)
        if execution is None:
            raise ProblemError(404, "No such execution", f"no execution {execution_id!r}")
        if execution.terminal:
            raise ProblemError(409, "Already ended",
                               f"execution {execution_id} is {execution.status}")
        try:
            await client().cancel(execution_id, reason or "cancelled through the API")
        except PublishError as exc:
            raise ProblemError(503, "Log unavailable", str(exc),
                               headers={"Retry-After": "1"}) from exc
        return {"execution_id": execution_id, "cancel": "requested"}

    @app.post(f"{PREFIX}/executions/{{execution_id}}/preempt", tags=["executions"],
              status_code=202,
              summary="Take a running execution's lease away (a failed attempt, retried)")
    async def preempt(execution_id: str,
                      reason: Annotated[str, Query(max_length=500)] = "") -> dict[str, Any]:
        execution = view.get(execution_id)
        if execution is None:
            raise ProblemError(404, "No such execution", f"no execution {execution_id!r}")
        if execution.status not in ("leased", "running"):
            raise ProblemError(409, "Not running",
                               f"execution {execution_id} is {execution.status}; only a "
                               "leased or running execution can be preempted")
        try:
            await client().preempt(execution_id, reason or "preempted through the API")
        except PublishError as exc:
            raise ProblemError(503, "Log unavailable", str(exc),
                               headers={"Retry-After": "1"}) from exc
        return {"execution_id": execution_id, "preempt": "requested"}

    @app.get(f"{PREFIX}/tasks", tags=["pools"],
             summary="Current leases per pool and free credits per lane")
    async def tasks() -> dict[str, Any]:
        return {"pools": [{
            "pool": t.pool.pool, "alive": t.pool.alive, "host": t.pool.host,
            "capacity": t.pool.capacity, "urgent_reserved": t.pool.urgent_reserved,
            "lease_seconds": t.pool.lease_seconds, "last_seen": t.pool.last_seen,
            "free": t.free,
            "leases": [{"execution_id": e.execution_id, "job_id": e.job_id, "lane": e.lane,
                        "status": e.status, "token": e.token, "attempt": e.attempt,
                        "lease_expires_at": e.lease_expires_at, "progress": e.progress,
                        "stuck": e.stuck} for e in t.leases]} for t in view.tasks()],
            "queued": {lane: view.queued(lane) for lane in LANES},
            "limits": dict(limits)}

    @app.post(f"{PREFIX}/seed", tags=["jobs"], status_code=202,
              summary="Trigger the demo jobs (create-user-settings, generate-report, "
                      "send-notification)")
    async def seed(body: SeedRequest | None = None) -> dict[str, Any]:
        from services.workers.examples import seed_requests

        wanted = seed_requests((body or SeedRequest()).count, tag=f"seed{uuid.uuid4().hex[:6]}")
        missing = sorted({job.id for job, _ in wanted} - set(registry))
        if missing:
            raise ProblemError(409, "Demo jobs not registered",
                               f"this API does not run the demo jobs ({', '.join(missing)}); "
                               "include services.workers.examples:EXAMPLES in NETSCRIPT_JOBS")
        for lane in LANES:
            if any(job.lane == lane for job, _ in wanted):
                admit(lane)
        prepared = [client().request(job, payload) for job, payload in wanted]
        receipts = await append(prepared)
        return {"executions": [{"execution_id": r.execution_id, "job_id": r.job_id,
                                "lane": r.lane} for r in receipts]}

    return app


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
