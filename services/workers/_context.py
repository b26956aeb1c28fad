"""``JobContext``: what a job handler gets for one attempt.

The pool builds it from the lease it was granted. ``heartbeat(progress=...)`` records progress
(the pool's next heartbeat carries it to the dispatcher, which extends the lease) and raises
:class:`LeaseLostError` once the lease is gone, so a handler that checks in stops working on
an execution another pool may now own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from services.workers._errors import LeaseLostError
from services.workers._jobs import Lane
from services.workers._records import Lease

if TYPE_CHECKING:
    from services.kernel import Published
    from services.sagas import SagaPublisher

P = TypeVar("P")


class LeaseTracker(Protocol):
    """The pool's side of a context: where progress goes and whether the lease still holds."""

    def record_progress(self, execution_id: str, token: int, progress: Any) -> None: ...

    def lost_reason(self, execution_id: str, token: int) -> str | None: ...


class JobContext(Generic[P]):
    """One attempt of one execution (see the module docstring)."""

    __slots__ = ("_events", "_sagas", "_tracker", "attempt", "execution_id", "job_id", "lane",
                 "lease", "payload", "traceparent")

    def __init__(self, *, job_id: str, execution_id: str, attempt: int, lane: Lane,
                 payload: P, lease: Lease, traceparent: str | None, tracker: LeaseTracker,
                 sagas: Callable[[], SagaPublisher],
                 events: Callable[[str, bytes, bytes | None], Awaitable[Published]]) -> None:
        self.job_id = job_id
        self.execution_id = execution_id
        self.attempt = attempt
        self.lane = lane
        self.payload = payload
        self.lease = lease
        self.traceparent = traceparent
        self._tracker = tracker
        self._sagas = sagas
        self._events = events

    @property
    def lease_expires_at(self) -> datetime:
        """When the lease ends unless a heartbeat extends it (the pool heartbeats for you)."""
        return datetime.fromtimestamp(self.lease.expires_at / 1000, UTC)

    async def heartbeat(self, progress: Any = None) -> None:
        """Record ``progress`` (any JSON: a fraction, a count, a dict).

        An execution whose progress stays the same for its job's ``stuck_after`` seconds is
        flagged stuck. Raises :class:`LeaseLostError` when the lease was revoked or expired.
        """
        self.raise_if_lost()
        self._tracker.record_progress(self.execution_id, self.lease.token, progress)

    def raise_if_lost(self) -> None:
        """Raise :class:`LeaseLostError` if this attempt no longer holds its lease."""
        reason = self._tracker.lost_reason(self.execution_id, self.lease.token)
        if reason is not None:
            raise LeaseLostError(self.execution_id, self.lease.token, reason)

    @property
    def sagas(self) -> SagaPublisher:
        """A saga publisher (``create_saga_publisher()``: the sagas API from the topology's
        environment), shared by the pool's handlers."""
        return self._sagas()

    async def publish(self, topic: str, value: bytes | Mapping[str, Any], *,
                      key: bytes | str | None = None) -> Published:
        """Append an event to ``topic`` (a mapping is sent as JSON) with this attempt's trace
        context; returns once the log acknowledged it."""
        import json

        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        key_bytes = key.encode() if isinstance(key, str) else key
        return await self._events(topic, data, key_bytes)
