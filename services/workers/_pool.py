"""A worker pool: runs the leases the dispatcher grants it, within its credits.

The pool announces itself with a heartbeat (capacity, urgent share, lease length), reads the
leases addressed to it from its partition of ``workers.assignments`` (committed records only:
a lease of an aborted dispatcher transaction never reaches it), runs each attempt in a task
under the job's timeout and reports ``started``/``finished`` in batches. Every heartbeat names
the leases it holds with their latest progress, which keeps them alive. A ``revoke`` cancels
the attempt; a result that was already on its way is still sent — the dispatcher refuses it by
its fencing token, which is the guarantee (the pool never decides whether it still holds a
lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.kernel._tracing import extract_trace_context, tracer
from services.workers._context import JobContext
from services.workers._errors import JobPayloadError, LeaseLostError
from services.workers._jobs import JobDefinition, JobResult
from services.workers._pool_settings import PoolSettings
from services.workers._records import (
    Assignment,
    Bye,
    Finished,
    Heartbeat,
    HeldLease,
    PoolEvent,
    Revocation,
    Started,
    report_to_json,
)
from services.workers._topics import ASSIGNMENTS, REPORTS, assignment_partition

if TYPE_CHECKING:
    from services.kernel import Published
    from services.sagas import SagaPublisher

log = logging.getLogger("netscript.workers.pool")

MAX_REPORT_EVENTS = 500


@dataclass(kw_only=True, slots=True)
class _Attempt:
    assignment: Assignment
    task: asyncio.Task[None] | None = None
    progress: Any = None
    lost: str | None = None
    done: bool = False


@dataclass(kw_only=True, slots=True)
class _Buffer:
    events: list[PoolEvent] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, event: PoolEvent) -> None:
        self.events.append(event)
        self.wake.set()


class WorkerPool:
    """One pool (see the module docstring): ``async with WorkerPool(...) as pool:`` runs it
    until the block ends, then stops gracefully (running attempts finish within the grace
    period, then ``bye``)."""

    def __init__(self, *, pool_id: str, settings: PoolSettings,
                 jobs: Mapping[str, JobDefinition[Any]], producer: AIOKafkaProducer,
                 bootstrap_servers: str, sagas: Callable[[], SagaPublisher],
                 events: Callable[[str, bytes, bytes | None], Awaitable[Published]]) -> None:
        self.pool_id = pool_id
        self.settings = settings
        self.jobs = dict(jobs)
        self._producer = producer
        self._bootstrap = bootstrap_servers
        self._sagas = sagas
        self._events = events
        self._attempts: dict[str, _Attempt] = {}
        self._buffer = _Buffer()
        self._accepting = True
        self._group: asyncio.TaskGroup | None = None
        self._attempt_group: asyncio.TaskGroup | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._stack = contextlib.AsyncExitStack()
        self._loops: list[asyncio.Task[None]] = []
        self.announced = asyncio.Event()
        self._host = socket.gethostname()

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> WorkerPool:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, isolation_level="read_committed",
            enable_auto_commit=False, group_id=None, fetch_max_wait_ms=100)
        await self._consumer.start()
        self._stack.push_async_callback(self._consumer.stop)
        tp = TopicPartition(ASSIGNMENTS, assignment_partition(self.pool_id))
        self._consumer.assign([tp])
        # Start from the end before announcing: every lease for this pool comes after.
        await self._consumer.seek_to_end(tp)
        await self._consumer.position(tp)
        self._attempt_group = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._group = await self._stack.enter_async_context(asyncio.TaskGroup())
        await self._send([self._heartbeat()])
        self.announced.set()
        self._loops = [self._group.create_task(loop())
                       for loop in (self._consume, self._beat, self._flush_loop)]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Take no new leases, let running attempts finish (``shutdown_grace_seconds``),
        report, say ``bye``. Stopping twice is harmless."""
        if not self._accepting:
            return
        self._accepting = False
        running = [a.task for a in self._attempts.values() if a.task and not a.task.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=self.settings.shutdown_grace_seconds)
            for task in late:
                task.cancel()
        try:
            await self._flush()
            await self._send([Bye()])
        except Exception as error:  # the log is away: the leases expire instead
            log.warning("pool %s: cannot say bye (%s)", self.pool_id, error)
        for task in self._loops:
            task.cancel()
        await self._stack.aclose()

    # -- the loops --------------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    try:
                        self._on_record(record.key, record.value)
                    except Exception as error:  # a bad record must not stop the pool
                        log.warning("pool %s: skipped a bad assignment record at offset %d: %s",
                                    self.pool_id, record.offset, error)

    def _on_record(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            raise ValueError("an assignment without a value")
        data = json.loads(value)
        if data.get("pool") != self.pool_id:
            return  # another pool's, on the same partition
        if data["type"] == "lease":
            self._start(Assignment.from_json(data))
        elif data["type"] == "revoke":
            self._revoke(Revocation.from_json(data))
        else:
            raise ValueError(f"unknown assignment type {data['type']!r}")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await self._send([self._heartbeat()])
            except Exception as error:  # the log is away: try again next beat
                log.warning("pool %s: heartbeat failed (%s)", self.pool_id, error)

    async def _flush_loop(self) -> None:
        while True:
            await self._buffer.wake.wait()
            await asyncio.sleep(self.settings.flush_interval)
            try:
                await self._flush()
            except Exception as error:  # kept in the buffer: sent with the next flush
                log.warning("pool %s: cannot report (%s); retrying", self.pool_id, error)
                await asyncio.sleep(0.5)

    async def _flush(self) -> None:
        while self._buffer.events:
            events = self._buffer.events[:MAX_REPORT_EVENTS]
            await self._send(events)
            del self._buffer.events[:len(events)]
        self._buffer.wake.clear()

    async def _send(self, events: list[PoolEvent]) -> None:
        await self._producer.send_and_wait(
            REPORTS, key=self.pool_id.encode(),
            value=json.dumps(report_to_json(self.pool_id, events)).encode())

    def _heartbeat(self) -> Heartbeat:
        held = tuple(HeldLease(execution_id=a.assignment.execution_id,
                               token=a.assignment.lease.token, progress=a.progress)
                     for a in self._attempts.values() if not a.done and a.lost is None)
        return Heartbeat(capacity=self.settings.capacity,
                         urgent_reserved=self.settings.urgent_reserved,
                         lease_seconds=self.settings.lease_seconds, leases=held,
                         host=self._host)

    # -- attempts ---------------------------------------------------------------------------

    def _start(self, assignment: Assignment) -> None:
        if not self._accepting:
            return  # stopping: the lease expires, or bye returns it
        current = self._attempts.get(assignment.execution_id)
        if current is not None:
            if current.assignment.lease.token >= assignment.lease.token:
                return  # a lease seen before
            if current.task is not None and not current.task.done():
                current.lost = "superseded by a newer lease"
                current.task.cancel()
        attempt = _Attempt(assignment=assignment)
        self._attempts[assignment.execution_id] = attempt
        assert self._attempt_group is not None
        attempt.task = self._attempt_group.create_task(self._run(attempt))

    def _revoke(self, revocation: Revocation) -> None:
        attempt = self._attempts.get(revocation.execution_id)
        if attempt is None or attempt.assignment.lease.token != revocation.token:
            return
        attempt.lost = revocation.reason
        if attempt.task is not None and not attempt.task.done():
            attempt.task.cancel()

    async def _run(self, attempt: _Attempt) -> None:
        assignment = attempt.assignment
        lease = assignment.lease
        try:
            outcome = await self._attempt(attempt)
        except asyncio.CancelledError:
            log.info("pool %s: attempt %d of %s stopped (%s)", self.pool_id,
                     assignment.attempt, assignment.execution_id, attempt.lost or "cancelled")
            return  # revoked (or the pool stops): the lease is someone else's business now
        finally:
            attempt.done = True
            if self._attempts.get(assignment.execution_id) is attempt:
                del self._attempts[assignment.execution_id]
        if outcome is not None:
            self._buffer.add(Finished(execution_id=assignment.execution_id, token=lease.token,
                                      ok=outcome.ok, result=outcome.data, error=outcome.error,
                                      retryable=outcome.retryable))

    async def _attempt(self, attempt: _Attempt) -> JobResult | None:
        """The attempt's outcome; ``None`` when it must not be reported (lease lost)."""
        assignment = attempt.assignment
        job = self.jobs.get(assignment.job_id)
        if job is None:
            return JobResult(ok=False, retryable=False,
                             error=f"no job {assignment.job_id!r} in this pool's registry")
        try:
            payload = job.validate(assignment.payload)
        except JobPayloadError as error:
            return JobResult(ok=False, retryable=False, error=str(error),
                             data={"errors": [dict(e) for e in error.errors]})
        self._buffer.add(Started(execution_id=assignment.execution_id,
                                 token=assignment.lease.token))
        context: JobContext[Any] = JobContext(
            job_id=job.id, execution_id=assignment.execution_id, attempt=assignment.attempt,
            lane=assignment.lane, payload=payload, lease=assignment.lease,
            traceparent=assignment.traceparent, tracker=self, sagas=self._sagas,
            events=self._events)
        parent = extract_trace_context(
            [("traceparent", assignment.traceparent.encode())] if assignment.traceparent else [])
        with tracer().start_as_current_span(
                f"job {job.id}", context=parent, kind=SpanKind.CONSUMER,
                attributes={"job.id": job.id, "execution.id": assignment.execution_id,
                            "job.attempt": assignment.attempt, "job.lane": assignment.lane,
                            "worker.pool": self.pool_id}) as span:
            try:
                async with asyncio.timeout(job.timeout):
                    result = await job.handler(context)
            except TimeoutError:
                span.set_status(Status(StatusCode.ERROR, "timeout"))
                return JobResult(ok=False, error=f"timed out after {job.timeout}s")
            except LeaseLostError:
                return None
            except Exception as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                return JobResult(ok=False, error=f"{type(error).__name__}: {error}")
            if result is None:
                return JobResult(ok=True)
            if not isinstance(result, JobResult):
                return JobResult(ok=False, retryable=False,
                                 error=f"the handler returned {type(result).__name__}, not a "
                                       "JobResult (use create_success_result(...))")
            if not result.ok:
                span.set_status(Status(StatusCode.ERROR, result.error or "failed"))
            return result

    # -- LeaseTracker -----------------------------------------------------------------------

    def record_progress(self, execution_id: str, token: int, progress: Any) -> None:
        attempt = self._attempts.get(execution_id)
        if attempt is not None and attempt.assignment.lease.token == token:
            attempt.progress = progress

    def lost_reason(self, execution_id: str, token: int) -> str | None:
        attempt = self._attempts.get(execution_id)
        if attempt is None or attempt.assignment.lease.token != token:
            return "the lease is no longer held by this pool"
        return attempt.lost

    # -- introspection ----------------------------------------------------------------------

    @property
    def running(self) -> int:
        """Attempts in progress."""
        return sum(1 for a in self._attempts.values() if not a.done)
