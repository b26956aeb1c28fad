"""What travels on the workers' topics, as typed values with their JSON form.

- :class:`JobRequest` — a trigger, on a lane topic (``workers.jobs.<lane>``), keyed by
  execution id. It carries the job's run policy, so the dispatcher never imports job code.
- :class:`Execution` — the executions table's value (its compacted changelog is the store).
- :class:`PoolState` — the pools table's value: a pool's capacity and when it was last seen.
- pool reports (``workers.reports``): ``{"pool": id, "events": [...]}`` with events
  ``heartbeat`` (capacity, lease length, held leases with progress), ``started``,
  ``finished``, ``bye`` — batched, so one record may carry many.
- assignments (``workers.assignments``, keyed by pool): ``lease`` and ``revoke``.
- commands (``workers.commands``): ``cancel`` and ``preempt`` of an execution.

Times are integer milliseconds since the Unix epoch (UTC), as in the records' timestamps.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, cast

from services.workers._jobs import JobDefinition, Lane, RetryPolicy

Status = Literal["queued", "leased", "running", "succeeded", "failed", "dead_lettered",
                 "cancelled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "dead_lettered", "cancelled"})
ACTIVE: frozenset[str] = frozenset({"leased", "running"})
_NAMESPACE = uuid.UUID("4f5c1f7e-8b9a-4f55-9d4e-2b8f3c6a1d20")


def execution_id_for(job_id: str, idempotency_key: str | None) -> str:
    """A new execution id, or — with an idempotency key — the same id for the same key, so a
    repeated trigger names the execution the first one created."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_NAMESPACE, f"{job_id}\x00{idempotency_key}"))


def retry_to_json(policy: RetryPolicy) -> dict[str, Any]:
    return {"max_attempts": policy.max_attempts, "backoff": policy.backoff,
            "multiplier": policy.multiplier, "max_backoff": policy.max_backoff}


def retry_from_json(data: Mapping[str, Any]) -> RetryPolicy:
    return RetryPolicy(max_attempts=int(data["max_attempts"]), backoff=float(data["backoff"]),
                       multiplier=float(data["multiplier"]),
                       max_backoff=float(data["max_backoff"]))


@dataclass(frozen=True, kw_only=True, slots=True)
class JobRequest:
    """A request to run a job once (with retries), as a trigger appends it to a lane."""

    execution_id: str
    job_id: str
    lane: Lane
    payload: Any
    retry: RetryPolicy
    timeout: float | None = None
    stuck_after: float | None = None
    preempt_stuck: bool = False
    idempotency_key: str | None = None
    traceparent: str | None = None
    triggered_at: int = 0

    @classmethod
    def for_job(cls, job: JobDefinition[Any], payload: Any, *, lane: Lane | None = None,
                idempotency_key: str | None = None, traceparent: str | None = None,
                triggered_at: int = 0) -> JobRequest:
        """A request for ``job`` with its run policy (the payload is sent as given)."""
        return cls(execution_id=execution_id_for(job.id, idempotency_key), job_id=job.id,
                   lane=lane or job.lane, payload=payload, retry=job.retry,
                   timeout=job.timeout, stuck_after=job.stuck_after,
                   preempt_stuck=job.preempt_stuck, idempotency_key=idempotency_key,
                   traceparent=traceparent, triggered_at=triggered_at)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["retry"] = retry_to_json(self.retry)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobRequest:
        """Raises ``KeyError``/``ValueError``/``TypeError`` on a malformed request."""
        lane = data["lane"]
        if lane not in ("normal", "urgent"):
            raise ValueError(f"unknown lane {lane!r}")
        if not isinstance(data["execution_id"], str) or not data["execution_id"]:
            raise ValueError("execution_id must be a non-empty string")
        if not isinstance(data["job_id"], str) or not data["job_id"]:
            raise ValueError("job_id must be a non-empty string")
        return cls(execution_id=data["execution_id"], job_id=data["job_id"],
                   lane=cast(Lane, lane), payload=data.get("payload"),
                   retry=retry_from_json(data["retry"]), timeout=data.get("timeout"),
                   stuck_after=data.get("stuck_after"),
                   preempt_stuck=bool(data.get("preempt_stuck", False)),
                   idempotency_key=data.get("idempotency_key"),
                   traceparent=data.get("traceparent"),
                   triggered_at=int(data.get("triggered_at") or 0))


def requests_from_json(data: Mapping[str, Any]) -> list[JobRequest]:
    """The requests of a lane record: one request, or ``{"requests": [...]}`` (a batch a
    client appended in one record — all of it valid, or the record is rejected whole)."""
    if "requests" in data:
        batch = data["requests"]
        if not isinstance(batch, list) or not batch:
            raise ValueError("'requests' must be a non-empty list of job requests")
        return [JobRequest.from_json(item) for item in batch]
    return [JobRequest.from_json(data)]


@dataclass(frozen=True, kw_only=True, slots=True)
class AttemptError:
    """Why an attempt failed."""

    attempt: int
    error: str
    at: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Execution:
    """One execution of a job: its status, attempts, current lease and outcome.

    ``token`` is the fencing token of the latest lease (it grows by one with every lease, so
    a result carrying an older token is rejected). ``available_at`` is when a queued
    execution may be leased (backoff). ``version`` grows with every change.
    """

    execution_id: str
    job_id: str
    lane: Lane
    status: Status
    payload: Any
    retry: RetryPolicy
    timeout: float | None = None
    stuck_after: float | None = None
    preempt_stuck: bool = False
    attempt: int = 0
    token: int = 0
    pool: str | None = None
    lease_expires_at: int | None = None
    available_at: int = 0
    progress: Any = None
    progress_at: int | None = None
    stuck: bool = False
    result: Any = None
    error: str | None = None
    errors: tuple[AttemptError, ...] = ()
    rejected_results: int = 0
    idempotency_key: str | None = None
    traceparent: str | None = None
    created_at: int = 0
    started_at: int | None = None
    finished_at: int | None = None
    updated_at: int = 0
    version: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def queued(cls, request: JobRequest, *, now: int) -> Execution:
        return cls(execution_id=request.execution_id, job_id=request.job_id,
                   lane=request.lane, status="queued", payload=request.payload,
                   retry=request.retry, timeout=request.timeout,
                   stuck_after=request.stuck_after, preempt_stuck=request.preempt_stuck,
                   idempotency_key=request.idempotency_key, traceparent=request.traceparent,
                   created_at=request.triggered_at or now, available_at=now, updated_at=now,
                   version=1)

    def to_json(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: this runs for every change the dispatcher
        # writes, and asdict deep-copies payloads and results it only needs to serialize.
        data = {name: getattr(self, name) for name in _EXECUTION_FIELDS}
        data["retry"] = retry_to_json(self.retry)
        data["errors"] = [{"attempt": e.attempt, "error": e.error, "at": e.at}
                          for e in self.errors]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Execution:
        values = dict(data)
        values["retry"] = retry_from_json(values["retry"])
        values["errors"] = tuple(AttemptError(**e) for e in values.get("errors") or ())
        return cls(**values)


_EXECUTION_FIELDS = tuple(f.name for f in fields(Execution))


@dataclass(frozen=True, kw_only=True, slots=True)
class PoolState:
    """A worker pool as the dispatcher knows it. ``urgent_reserved`` of ``capacity`` is kept
    for urgent work; the rest serves either lane."""

    pool: str
    capacity: int
    urgent_reserved: int
    lease_seconds: float
    last_seen: int
    alive: bool = True
    host: str | None = None

    @property
    def normal_limit(self) -> int:
        """At most this many normal-lane leases (the urgent share stays free)."""
        return self.capacity - self.urgent_reserved

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PoolState:
        return cls(**data)


@dataclass(frozen=True, kw_only=True, slots=True)
class Lease:
    """The right to run one execution until ``expires_at``; ``token`` fences late results."""

    execution_id: str
    pool: str
    token: int
    expires_at: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Assignment:
    """A lease granted to a pool: everything the pool needs to run the attempt."""

    execution_id: str
    job_id: str
    lane: Lane
    payload: Any
    attempt: int
    lease: Lease
    timeout: float | None = None
    traceparent: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": "lease", "pool": self.lease.pool, "execution_id": self.execution_id,
                "job_id": self.job_id, "lane": self.lane, "payload": self.payload,
                "attempt": self.attempt, "token": self.lease.token,
                "lease_expires_at": self.lease.expires_at, "timeout": self.timeout,
                "traceparent": self.traceparent}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Assignment:
        lease = Lease(execution_id=data["execution_id"], pool=data["pool"],
                      token=int(data["token"]), expires_at=int(data["lease_expires_at"]))
        return cls(execution_id=data["execution_id"], job_id=data["job_id"],
                   lane=data["lane"], payload=data.get("payload"),
                   attempt=int(data["attempt"]), lease=lease, timeout=data.get("timeout"),
                   traceparent=data.get("traceparent"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Revocation:
    """The dispatcher took a lease back (expired, cancelled, preempted): stop the attempt."""

    pool: str
    execution_id: str
    token: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "revoke", **asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Revocation:
        return cls(pool=data["pool"], execution_id=data["execution_id"],
                   token=int(data["token"]), reason=str(data["reason"]))


# -- pool reports -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class HeldLease:
    """A lease a pool still works on, with the handler's latest progress."""

    execution_id: str
    token: int
    progress: Any = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Heartbeat:
    """A pool is alive: its capacity, lease length and the leases it holds."""

    capacity: int
    urgent_reserved: int
    lease_seconds: float
    leases: tuple[HeldLease, ...] = ()
    host: str | None = None
    type: Literal["heartbeat"] = "heartbeat"


@dataclass(frozen=True, kw_only=True, slots=True)
class Started:
    """The pool started the attempt of a lease."""

    execution_id: str
    token: int
    type: Literal["started"] = "started"


@dataclass(frozen=True, kw_only=True, slots=True)
class Finished:
    """An attempt ended: ``ok`` with ``result``, or a failure with ``error``."""

    execution_id: str
    token: int
    ok: bool
    result: Any = None
    error: str | None = None
    retryable: bool = True
    type: Literal["finished"] = "finished"


@dataclass(frozen=True, kw_only=True, slots=True)
class Bye:
    """The pool stops: the leases it still holds go back to their lanes now."""

    type: Literal["bye"] = "bye"


PoolEvent = Heartbeat | Started | Finished | Bye


def report_to_json(pool: str, events: list[PoolEvent]) -> dict[str, Any]:
    """A report record's value: ``pool`` and its events in order."""
    return {"pool": pool, "events": [asdict(e) for e in events]}


def report_from_json(data: Mapping[str, Any]) -> tuple[str, list[PoolEvent]]:
    """Raises ``KeyError``/``ValueError``/``TypeError`` on a malformed report."""
    pool = data["pool"]
    if not isinstance(pool, str) or not pool:
        raise ValueError("a report names its pool")
    events: list[PoolEvent] = []
    for raw in data["events"]:
        kind = raw["type"]
        if kind == "heartbeat":
            leases = tuple(HeldLease(execution_id=str(h["execution_id"]), token=int(h["token"]),
                                     progress=h.get("progress")) for h in raw.get("leases", ()))
            events.append(Heartbeat(capacity=int(raw["capacity"]),
                                    urgent_reserved=int(raw["urgent_reserved"]),
                                    lease_seconds=float(raw["lease_seconds"]), leases=leases,
                                    host=raw.get("host")))
        elif kind == "started":
            events.append(Started(execution_id=str(raw["execution_id"]),
                                  token=int(raw["token"])))
        elif kind == "finished":
            events.append(Finished(execution_id=str(raw["execution_id"]),
                                   token=int(raw["token"]), ok=bool(raw["ok"]),
                                   result=raw.get("result"), error=raw.get("error"),
                                   retryable=bool(raw.get("retryable", True))))
        elif kind == "bye":
            events.append(Bye())
        else:
            raise ValueError(f"unknown pool event {kind!r}")
    return pool, events


# -- commands -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Command:
    """An operator's request about one execution: ``cancel`` it, or ``preempt`` its lease
    (the attempt counts as failed and the execution is retried)."""

    type: Literal["cancel", "preempt"]
    execution_id: str
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Command:
        kind = data["type"]
        if kind not in ("cancel", "preempt"):
            raise ValueError(f"unknown command {kind!r}")
        return cls(type=kind, execution_id=str(data["execution_id"]),
                   reason=str(data.get("reason", "")))


