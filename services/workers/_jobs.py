"""Authoring background jobs: ``define_job``, the handler, its result, the retry policy.

A job is an async handler plus how to run it::

    class Payload(BaseModel):
        user_id: str

    @define_job_handler
    async def create_settings(ctx: JobContext[Payload]) -> JobResult:
        await ctx.heartbeat(progress=0.5)
        return create_success_result({"user_id": ctx.payload.user_id})

    job = define_job("create-user-settings", create_settings, payload=Payload,
                     retry=RetryPolicy(max_attempts=5), timeout=30, lane="normal")

The handler gets a :class:`~services.workers.JobContext`. It returns a result (``None`` counts
as success); raising, or timing out, is a failed attempt: retried with exponential backoff up
to ``retry.max_attempts``, then dead-lettered with the last error. A failure result with
``retryable=False`` ends the execution as ``failed`` at once.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from services.workers._errors import JobDefinitionError, JobPayloadError

if TYPE_CHECKING:
    from services.workers._context import JobContext

Lane = Literal["normal", "urgent"]
LANES: tuple[Lane, ...] = ("normal", "urgent")
P = TypeVar("P")

_JOB_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often a failed attempt is retried, and how long the execution waits in between.

    The wait before attempt ``n + 1`` is ``backoff * multiplier ** (n - 1)``, at most
    ``max_backoff`` seconds. ``max_attempts`` counts every attempt, the first included; a
    lease that expired (the worker died or stalled) counts as an attempt too.
    """

    max_attempts: int = 3
    backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if self.backoff < 0 or self.multiplier < 1 or self.max_backoff < 0:
            raise ValueError("RetryPolicy needs backoff >= 0, multiplier >= 1, max_backoff >= 0")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        return float(min(self.backoff * self.multiplier ** max(attempt - 1, 0), self.max_backoff))


@dataclass(frozen=True, kw_only=True, slots=True)
class JobResult:
    """What a handler returns: success with ``data``, or failure with ``error``."""

    ok: bool
    data: Mapping[str, Any] | None = None
    error: str | None = None
    retryable: bool = True


def create_success_result(data: Mapping[str, Any] | None = None) -> JobResult:
    """A successful outcome; ``data`` (JSON) is recorded on the execution."""
    return JobResult(ok=True, data=dict(data) if data is not None else None)


def create_failure_result(error: str, *, retryable: bool = True,
                          data: Mapping[str, Any] | None = None) -> JobResult:
    """A failed attempt. ``retryable=False`` fails the execution without further attempts."""
    return JobResult(ok=False, error=error, retryable=retryable,
                     data=dict(data) if data is not None else None)


JobHandler = Callable[["JobContext[P]"], Awaitable["JobResult | None"]]
"""An async function of the job's context returning its result (``None``: success)."""


def define_job_handler(handler: JobHandler[P]) -> JobHandler[P]:
    """Mark ``handler`` as a job handler (it only checks that it is async, and types it)."""
    import inspect

    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"a job handler must be an async function, got {handler!r}")
    return handler


@dataclass(frozen=True, kw_only=True, slots=True)
class JobDefinition(Generic[P]):
    """A registered job: its id, handler and how executions of it run (see module docs)."""

    id: str
    handler: JobHandler[P]
    payload: type[BaseModel] | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    lane: Lane = "normal"
    stuck_after: float | None = None
    preempt_stuck: bool = False
    description: str = ""

    def validate(self, payload: Any) -> Any:
        """The payload the handler gets: an instance of the job's model (or the JSON as is).

        Raises :class:`JobPayloadError` naming each field at fault.
        """
        if self.payload is None:
            return payload
        try:
            return self.payload.model_validate(payload if payload is not None else {})
        except ValidationError as exc:
            errors = [{"field": ".".join(str(p) for p in e["loc"]) or "payload",
                       "message": e["msg"], "loc": list(e["loc"])} for e in exc.errors()]
            raise JobPayloadError(self.id, errors) from exc

    def payload_schema(self) -> Mapping[str, Any] | None:
        """The payload's JSON Schema (what the API lists), if the job declares a model."""
        return self.payload.model_json_schema() if self.payload is not None else None


def define_job(job_id: str, handler: JobHandler[P], *, payload: type[BaseModel] | None = None,
               retry: RetryPolicy | None = None, timeout: float | None = None,
               lane: Lane = "normal", stuck_after: float | None = None,
               preempt_stuck: bool = False, description: str = "") -> JobDefinition[P]:
    """Define a job (see the module docstring).

    ``timeout``: seconds an attempt may run (then it fails and is retried). ``stuck_after``:
    seconds of heartbeats without progress before the execution is flagged stuck;
    ``preempt_stuck`` also takes its lease away (a failed attempt). ``lane``: the default lane
    (a trigger may override it). Raises :class:`JobDefinitionError` on misuse.
    """
    import inspect

    if not _JOB_ID.match(job_id):
        raise JobDefinitionError(job_id, "an id is lowercase letters, digits, '.', '_' or '-' "
                                 "(at most 128), e.g. 'create-user-settings'")
    if not inspect.iscoroutinefunction(handler):
        raise JobDefinitionError(job_id, "the handler must be an async function "
                                 "(async def handler(ctx): ...)")
    if payload is not None and not (isinstance(payload, type) and issubclass(payload, BaseModel)):
        raise JobDefinitionError(job_id, "payload= takes a pydantic model class")
    if lane not in LANES:
        raise JobDefinitionError(job_id, f"lane must be 'normal' or 'urgent', not {lane!r}")
    for name, value in (("timeout", timeout), ("stuck_after", stuck_after)):
        if value is not None and value <= 0:
            raise JobDefinitionError(job_id, f"{name} must be a positive number of seconds")
    if preempt_stuck and stuck_after is None:
        raise JobDefinitionError(job_id, "preempt_stuck=True needs stuck_after= (seconds)")
    return JobDefinition(id=job_id, handler=handler, payload=payload,
                         retry=retry or RetryPolicy(), timeout=timeout, lane=lane,
                         stuck_after=stuck_after, preempt_stuck=preempt_stuck,
                         description=description)
