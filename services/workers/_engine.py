"""The dispatcher's decisions, as a pure state machine (no I/O, no clock of its own).

:class:`DispatchEngine` holds every execution and pool, plus the indexes it decides with:
the ready queue of each lane, the executions waiting out a backoff, the active leases and
each pool's load. The processor (``_dispatcher``) feeds it one input record at a time, then
writes what :meth:`DispatchEngine.drain` returns — changed executions and pools, assignments,
revocations, dead letters — in the transaction that commits the record. ``now`` is the wall
clock: a lease must last its length from when the pool can see it, also while a restarted
dispatcher catches up on old records (their timestamps would grant leases that expired before
they were sent). What a heartbeat proves is dated by its record's timestamp instead: the pool
was alive when it sent it, not when the dispatcher read it. A restarted dispatcher may decide
an aborted transaction's records differently; nothing of that transaction was ever visible.

Credits: a pool holds at most ``capacity`` leases, and at most ``capacity - urgent_reserved``
of them from the normal lane, so the urgent share is always free for urgent work. Urgent
executions are leased first; each goes to the live pool with the most free credits for its lane.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from services.workers._jobs import LANES, Lane
from services.workers._records import (
    ACTIVE,
    Assignment,
    AttemptError,
    Bye,
    Command,
    Execution,
    Finished,
    Heartbeat,
    JobRequest,
    Lease,
    PoolEvent,
    PoolState,
    Revocation,
    Started,
)

POOL_TIMEOUT_LEASES = 1.0
"""A pool that sent no heartbeat for this many lease lengths is considered gone."""


@dataclass(kw_only=True, slots=True)
class Outcome:
    """What one input changed: to be written in its transaction."""

    executions: dict[str, Execution] = field(default_factory=dict)
    pools: dict[str, PoolState] = field(default_factory=dict)
    assignments: list[Assignment] = field(default_factory=list)
    revocations: list[Revocation] = field(default_factory=list)
    dead_letters: list[Execution] = field(default_factory=list)
    rejected: list[tuple[str, int, str]] = field(default_factory=list)
    """Results refused: (execution id, token, why)."""

    def __bool__(self) -> bool:
        return bool(self.executions or self.pools or self.assignments or self.revocations
                    or self.dead_letters or self.rejected)


@dataclass(kw_only=True, slots=True)
class _Load:
    normal: int = 0
    urgent: int = 0

    @property
    def total(self) -> int:
        return self.normal + self.urgent


class DispatchEngine:
    """See the module docstring."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.executions: dict[str, Execution] = {}
        self.pools: dict[str, PoolState] = {}
        self._ready: dict[Lane, deque[str]] = {lane: deque() for lane in LANES}
        self._delayed: list[tuple[int, str]] = []
        self._active: set[str] = set()
        self._load: dict[str, _Load] = {}
        self._out = Outcome()

    # -- state ------------------------------------------------------------------------------

    def load(self, executions: Iterable[Execution], pools: Iterable[PoolState]) -> None:
        """Rebuild the indexes from recovered tables (after a start or a rebalance)."""
        self._reset()
        self.pools = {p.pool: p for p in pools}
        queued: list[Execution] = []
        for execution in executions:
            self.executions[execution.execution_id] = execution
            if execution.status == "queued":
                queued.append(execution)
            elif execution.status in ACTIVE:
                self._activate(execution)
        for execution in sorted(queued, key=lambda e: (e.available_at, e.created_at)):
            self._enqueue(execution)

    def drain(self) -> Outcome:
        """What changed since the last drain."""
        out, self._out = self._out, Outcome()
        return out

    def queued(self, lane: Lane) -> int:
        """How many executions wait in ``lane`` (ready or backing off)."""
        return sum(1 for e in self.executions.values() if e.status == "queued" and e.lane == lane)

    def load_of(self, pool: str) -> tuple[int, int]:
        """``(normal, urgent)`` leases ``pool`` holds."""
        load = self._load.get(pool, _Load())
        return load.normal, load.urgent

    # -- inputs -----------------------------------------------------------------------------

    def request(self, request: JobRequest, *, now: int) -> None:
        """A trigger: a new execution is queued; a known execution id (the same idempotency
        key) is left as it is."""
        if request.execution_id in self.executions:
            return
        execution = Execution.queued(request, now=now)
        self._put(execution)
        self._enqueue(execution)
        self._dispatch(now)

    def report(self, pool: str, events: Iterable[PoolEvent], *, now: int,
               sent_at: int | None = None) -> None:
        """A pool's batched report, in order. ``sent_at`` (the record's timestamp) dates what
        a heartbeat proves — the pool was alive *then* — while ``now`` dates decisions."""
        for event in events:
            if isinstance(event, Heartbeat):
                self._heartbeat(pool, event, now if sent_at is None else min(sent_at, now))
            elif isinstance(event, Started):
                self._started(pool, event, now)
            elif isinstance(event, Finished):
                self._finished(pool, event, now)
            elif isinstance(event, Bye):
                self._bye(pool, now)
        self._dispatch(now)

    def command(self, command: Command, *, now: int) -> None:
        """``cancel`` (queued or running) or ``preempt`` (running) an execution."""
        execution = self.executions.get(command.execution_id)
        if execution is not None and not execution.terminal:
            if command.type == "cancel":
                if execution.status in ACTIVE:
                    self._revoke(execution, f"cancelled: {command.reason}".rstrip(": "))
                    self._release(execution)
                self._put(replace(execution, status="cancelled", finished_at=now,
                                  error=command.reason or "cancelled", lease_expires_at=None,
                                  updated_at=now, version=execution.version + 1))
            elif execution.status in ACTIVE:
                self._revoke(execution, f"preempted: {command.reason}".rstrip(": "))
                self._attempt_failed(execution, f"preempted: {command.reason or 'operator'}",
                                     retryable=True, now=now)
        self._dispatch(now)

    def tick(self, *, now: int) -> None:
        """The clock moved: expire leases, retire silent pools, flag stuck executions."""
        for execution_id in sorted(self._active):
            execution = self.executions[execution_id]
            if execution.lease_expires_at is not None and execution.lease_expires_at <= now:
                self._revoke(execution, "lease expired")
                self._attempt_failed(execution, f"lease expired (pool {execution.pool})",
                                     retryable=True, now=now)
                # Its heartbeats stopped covering the lease: dead or stalled. No new work
                # until it heartbeats again (else the retry may go straight back to it).
                pool = self.pools.get(execution.pool or "")
                if pool is not None and pool.alive:
                    self._put_pool(replace(pool, alive=False))
            else:
                self._check_stuck(execution, now)
        for pool in list(self.pools.values()):
            timeout = int(pool.lease_seconds * 1000 * POOL_TIMEOUT_LEASES)
            if pool.alive and now - pool.last_seen > timeout:
                self._put_pool(replace(pool, alive=False))
        self._dispatch(now)

    # -- pool events ------------------------------------------------------------------------

    def _heartbeat(self, pool_id: str, beat: Heartbeat, now: int) -> None:
        previous = self.pools.get(pool_id)
        if previous is not None and previous.last_seen > now:
            return  # an older heartbeat than one already applied proves nothing new
        pool = PoolState(pool=pool_id, capacity=beat.capacity,
                         urgent_reserved=min(beat.urgent_reserved, beat.capacity),
                         lease_seconds=beat.lease_seconds, last_seen=now, alive=True,
                         host=beat.host)
        self._put_pool(pool)
        for held in beat.leases:
            execution = self._current(pool_id, held.execution_id, held.token)
            if execution is None:
                continue
            progressed = held.progress is not None and held.progress != execution.progress
            expires = max(execution.lease_expires_at or 0, now + int(pool.lease_seconds * 1000))
            execution = replace(
                execution, lease_expires_at=expires,
                progress=held.progress if progressed else execution.progress,
                progress_at=now if progressed else execution.progress_at,
                stuck=False if progressed else execution.stuck,
                updated_at=now, version=execution.version + 1)
            self._put(execution)
            self._check_stuck(execution, now)

    def _started(self, pool_id: str, event: Started, now: int) -> None:
        execution = self._current(pool_id, event.execution_id, event.token)
        if execution is not None and execution.status == "leased":
            self._put(replace(execution, status="running", started_at=now, updated_at=now,
                              version=execution.version + 1))

    def _finished(self, pool_id: str, event: Finished, now: int) -> None:
        execution = self._current(pool_id, event.execution_id, event.token)
        if execution is None:
            self._reject(event, pool_id)
            return
        if event.ok:
            self._release(execution)
            self._put(replace(execution, status="succeeded", result=event.result,
                              finished_at=now, lease_expires_at=None, updated_at=now,
                              version=execution.version + 1))
        else:
            if event.result is not None:
                execution = replace(execution, result=event.result)
            self._attempt_failed(execution, event.error or "failed",
                                 retryable=event.retryable, now=now)

    def _bye(self, pool_id: str, now: int) -> None:
        pool = self.pools.get(pool_id)
        if pool is not None:
            self._put_pool(replace(pool, alive=False, last_seen=now))
        for execution_id in sorted(self._active):
            execution = self.executions[execution_id]
            if execution.pool == pool_id:
                self._attempt_failed(execution, f"pool {pool_id} stopped", retryable=True,
                                     now=now, backoff=False)

    # -- transitions ------------------------------------------------------------------------

    def _current(self, pool_id: str, execution_id: str, token: int) -> Execution | None:
        """The execution if ``pool_id`` still holds its lease ``token``."""
        execution = self.executions.get(execution_id)
        if (execution is None or execution.status not in ACTIVE or execution.token != token
                or execution.pool != pool_id):
            return None
        return execution

    def _reject(self, event: Finished, pool_id: str) -> None:
        execution = self.executions.get(event.execution_id)
        if execution is None:
            self._out.rejected.append((event.execution_id, event.token, "unknown execution"))
            return
        why = (f"lease {event.token} is not current (status {execution.status}, "
               f"token {execution.token}, pool {execution.pool})")
        self._out.rejected.append((event.execution_id, event.token, why))
        self._put(replace(execution, rejected_results=execution.rejected_results + 1,
                          version=execution.version + 1))

    def _attempt_failed(self, execution: Execution, error: str, *, retryable: bool,
                        now: int, backoff: bool = True) -> None:
        self._release(execution)
        errors = (*execution.errors, AttemptError(attempt=execution.attempt, error=error, at=now))
        common: dict[str, Any] = {"error": error, "errors": errors, "lease_expires_at": None,
                                  "stuck": False, "updated_at": now,
                                  "version": execution.version + 1}
        if not retryable:
            self._put(replace(execution, status="failed", finished_at=now, **common))
        elif execution.attempt >= execution.retry.max_attempts:
            failed = replace(execution, status="dead_lettered", finished_at=now, **common)
            self._put(failed)
            self._out.dead_letters.append(failed)
        else:
            delay = int(execution.retry.delay(execution.attempt) * 1000) if backoff else 0
            queued = replace(execution, status="queued", pool=None, available_at=now + delay,
                             **common)
            self._put(queued)
            self._enqueue(queued)

    def _revoke(self, execution: Execution, reason: str) -> None:
        if execution.pool is not None:
            self._out.revocations.append(Revocation(
                pool=execution.pool, execution_id=execution.execution_id,
                token=execution.token, reason=reason))

    def _check_stuck(self, execution: Execution, now: int) -> None:
        if execution.stuck_after is None or execution.status not in ACTIVE:
            return
        since = execution.progress_at or execution.updated_at
        if now - since < int(execution.stuck_after * 1000):
            return
        if execution.preempt_stuck:
            self._revoke(execution, "stuck: no progress")
            self._attempt_failed(execution, f"stuck: no progress for {execution.stuck_after}s",
                                 retryable=True, now=now)
        elif not execution.stuck:
            self._put(replace(execution, stuck=True, updated_at=now,
                              version=execution.version + 1))

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, now: int) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, execution_id = heapq.heappop(self._delayed)
            execution = self.executions.get(execution_id)
            if execution is not None and execution.status == "queued":
                self._ready[execution.lane].append(execution_id)
        for lane in ("urgent", "normal"):
            ready = self._ready[lane]
            while ready:
                pool = self._pick_pool(lane)
                if pool is None:
                    break
                execution = self.executions.get(ready.popleft())
                if execution is None or execution.status != "queued":
                    continue  # cancelled while queued, or already leased
                self._lease(execution, pool, now)

    def _pick_pool(self, lane: str) -> PoolState | None:
        best: PoolState | None = None
        best_free = 0
        for pool in self.pools.values():
            if not pool.alive:
                continue
            load = self._load.get(pool.pool) or _Load()
            free = pool.capacity - load.total
            if lane == "normal":
                free = min(free, pool.normal_limit - load.normal)
            if free > best_free:
                best, best_free = pool, free
        return best

    def _lease(self, execution: Execution, pool: PoolState, now: int) -> None:
        token = execution.token + 1
        expires = now + int(pool.lease_seconds * 1000)
        leased = replace(execution, status="leased", pool=pool.pool, token=token,
                         attempt=execution.attempt + 1, lease_expires_at=expires,
                         progress_at=now, stuck=False, updated_at=now,
                         version=execution.version + 1)
        self._put(leased)
        self._activate(leased)
        self._out.assignments.append(Assignment(
            execution_id=leased.execution_id, job_id=leased.job_id, lane=leased.lane,
            payload=leased.payload, attempt=leased.attempt, timeout=leased.timeout,
            traceparent=leased.traceparent,
            lease=Lease(execution_id=leased.execution_id, pool=pool.pool, token=token,
                        expires_at=expires)))

    # -- indexes ----------------------------------------------------------------------------

    def _put(self, execution: Execution) -> None:
        self.executions[execution.execution_id] = execution
        self._out.executions[execution.execution_id] = execution

    def _put_pool(self, pool: PoolState) -> None:
        self.pools[pool.pool] = pool
        self._out.pools[pool.pool] = pool

    def _enqueue(self, execution: Execution) -> None:
        if execution.available_at > execution.updated_at:
            heapq.heappush(self._delayed, (execution.available_at, execution.execution_id))
        else:
            self._ready[execution.lane].append(execution.execution_id)

    def _activate(self, execution: Execution) -> None:
        self._active.add(execution.execution_id)
        if execution.pool is not None:
            load = self._load.setdefault(execution.pool, _Load())
            if execution.lane == "urgent":
                load.urgent += 1
            else:
                load.normal += 1

    def _release(self, execution: Execution) -> None:
        if execution.execution_id not in self._active:
            return
        self._active.discard(execution.execution_id)
        load = self._load.get(execution.pool or "")
        if load is not None:
            if execution.lane == "urgent":
                load.urgent -= 1
            else:
                load.normal -= 1
