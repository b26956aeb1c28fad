"""``JobClient``: trigger jobs (and cancel executions) by appending to the log.

What the API does for an HTTP trigger, as a library: validate the payload against the job,
build the :class:`JobRequest` (with the job's run policy), append it to its lane topic keyed by
execution id and wait for the log's acknowledgement (acks=all). An ``idempotency_key`` makes
the execution id deterministic, so triggering twice with the same key names one execution.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka.errors import KafkaError

from services.kernel import PublishError, Settings, create_producer
from services.kernel._tracing import inject_trace_headers, publish_span, traceparent_of
from services.workers._errors import UnknownJobError
from services.workers._jobs import JobDefinition, Lane
from services.workers._records import Command, JobRequest
from services.workers._topics import COMMANDS, LANE_TOPICS


@dataclass(frozen=True, kw_only=True, slots=True)
class TriggerReceipt:
    """Where the log stored a job request."""

    execution_id: str
    job_id: str
    lane: Lane
    partition: int
    offset: int


class JobClient:
    """``async with JobClient(jobs, settings) as client: await client.trigger("job", {...})``.

    Raises :class:`UnknownJobError` for a job id it does not know, :class:`JobPayloadError`
    for a payload the job's model rejects, and :class:`~services.kernel.PublishError` when the
    log does not acknowledge.
    """

    def __init__(self, jobs: Iterable[JobDefinition[Any]], settings: Settings) -> None:
        self.jobs = {job.id: job for job in jobs}
        self._producer = create_producer(settings, linger_ms=2)
        self._state = "new"

    async def __aenter__(self) -> JobClient:
        if self._state != "new":
            raise RuntimeError("a JobClient cannot be reopened; create a new one")
        try:
            await self._producer.start()
        except KafkaError as exc:
            raise PublishError(topic="*", reason=f"cannot connect ({exc})") from exc
        self._state = "open"
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush and stop; closing twice is harmless."""
        if self._state == "open":
            self._state = "closed"
            await self._producer.stop()

    def job(self, job: JobDefinition[Any] | str) -> JobDefinition[Any]:
        """The registered definition of ``job`` (raises :class:`UnknownJobError`)."""
        if isinstance(job, JobDefinition):
            return job
        try:
            return self.jobs[job]
        except KeyError:
            raise UnknownJobError(job, list(self.jobs)) from None

    def request(self, job: JobDefinition[Any] | str, payload: Any, *, lane: Lane | None = None,
                idempotency_key: str | None = None) -> JobRequest:
        """The request a trigger appends (the payload validated, sent as JSON)."""
        definition = self.job(job)
        definition.validate(payload)
        return JobRequest.for_job(definition, payload, lane=lane,
                                  idempotency_key=idempotency_key,
                                  triggered_at=int(time.time() * 1000))

    async def trigger(self, job: JobDefinition[Any] | str, payload: Any = None, *,
                      lane: Lane | None = None,
                      idempotency_key: str | None = None) -> TriggerReceipt:
        """Validate, append and wait for the acknowledgement."""
        [receipt] = await self.trigger_many([(job, payload)], lane=lane,
                                            idempotency_keys=[idempotency_key])
        return receipt

    async def trigger_many(self, items: Sequence[tuple[JobDefinition[Any] | str, Any]], *,
                           lane: Lane | None = None,
                           idempotency_keys: Sequence[str | None] | None = None,
                           ) -> list[TriggerReceipt]:
        """Trigger many at once: every request is sent before the first acknowledgement is
        awaited (one round of batches, not one round trip per job)."""
        keys = list(idempotency_keys) if idempotency_keys is not None else [None] * len(items)
        requests = [self.request(job, payload, lane=lane, idempotency_key=key)
                    for (job, payload), key in zip(items, keys, strict=True)]
        return await self.append(requests)

    async def append(self, requests: Sequence[JobRequest]) -> list[TriggerReceipt]:
        """Append prepared requests (already validated) to their lanes."""
        self._require_open()
        with publish_span("workers.jobs", key=None) as span:
            headers = inject_trace_headers()
            traceparent = traceparent_of(headers)
            span.set_attribute("messaging.batch.message_count", len(requests))
            try:
                futures: list[tuple[list[JobRequest], Any]] = []
                for lane, batch in _batches(requests):
                    values = []
                    for request in batch:
                        value = request.to_json()
                        value["traceparent"] = request.traceparent or traceparent
                        values.append(value)
                    # One record per request, or per batch of many: the dispatcher takes a
                    # batch in one step (and all of it or none of it).
                    body = values[0] if len(values) == 1 else {"requests": values}
                    futures.append((batch, await self._producer.send(
                        LANE_TOPICS[lane], json.dumps(body).encode(),
                        key=batch[0].execution_id.encode(), headers=headers)))
                metas = await asyncio.gather(*(future for _, future in futures))
            except KafkaError as exc:
                raise PublishError(topic="workers.jobs", reason=str(exc) or type(exc).__name__
                                   ) from exc
        return [TriggerReceipt(execution_id=r.execution_id, job_id=r.job_id, lane=r.lane,
                               partition=m.partition, offset=m.offset)
                for (batch, _), m in zip(futures, metas, strict=True) for r in batch]

    async def cancel(self, execution_id: str, reason: str = "") -> None:
        """Ask the dispatcher to cancel ``execution_id`` (queued or running)."""
        await self._command(Command(type="cancel", execution_id=execution_id, reason=reason))

    async def preempt(self, execution_id: str, reason: str = "") -> None:
        """Take the running attempt's lease away (a failed attempt, retried)."""
        await self._command(Command(type="preempt", execution_id=execution_id, reason=reason))

    async def _command(self, command: Command) -> None:
        self._require_open()
        with publish_span(COMMANDS, key=command.execution_id.encode()):
            try:
                await self._producer.send_and_wait(
                    COMMANDS, json.dumps(command.to_json()).encode(),
                    key=command.execution_id.encode(), headers=inject_trace_headers())
            except KafkaError as exc:
                raise PublishError(topic=COMMANDS, reason=str(exc) or type(exc).__name__
                                   ) from exc

    def _require_open(self) -> None:
        if self._state != "open":
            raise RuntimeError("the JobClient is not open; use it as an async context manager")


BATCH_SIZE = 500
"""Requests per lane record when many are triggered at once."""


def _batches(requests: Sequence[JobRequest]) -> list[tuple[Lane, list[JobRequest]]]:
    """Consecutive requests of one lane, at most :data:`BATCH_SIZE` per batch, in order."""
    out: list[tuple[Lane, list[JobRequest]]] = []
    for request in requests:
        if out and out[-1][0] == request.lane and len(out[-1][1]) < BATCH_SIZE:
            out[-1][1].append(request)
        else:
            out.append((request.lane, [request]))
    return out


def create_job_client(jobs: Iterable[JobDefinition[Any]],
                      settings: Settings | None = None,
                      environ: Mapping[str, str] | None = None) -> JobClient:
    """A :class:`JobClient` on the log the topology's environment names."""
    return JobClient(jobs, settings or Settings.from_env("workers-client", environ))
