"""What the saga runtime writes: instances, transitions, and the records its effects become.

Every value here round-trips through JSON (``to_json`` / ``from_json``), because each lives on
a topic: instances in the compacted changelog of the instance table (or a Postgres row),
transitions on ``sagas.transitions``, effects on the bus or ``sagas.commands``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, cast

from services.sagas._messages import SagaMessage

Status = Literal["pending", "running", "compensating", "completed", "failed"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed"})

TransitionEvent = Literal[
    "saga:started", "saga:state_changed", "saga:compensating", "saga:completed", "saga:failed",
    "saga:parked", "saga:ignored",
]
"""The first five are the SSE events of ``GET /api/v1/sagas/subscribe``; ``parked`` and
``ignored`` are recorded too, so the history explains every message an instance received."""

SEEN_KEYS = 128
"""How many recent idempotency keys an instance remembers to drop redelivered messages."""


def instance_key(saga_id: str, correlation_key: str) -> str:
    """The key of an instance on the bus and in the store: ``<saga id>/<correlation key>``."""
    return f"{saga_id}/{correlation_key}"


def message_to_json(message: SagaMessage) -> dict[str, Any]:
    """``message`` as JSON (``occurred_at`` as ISO 8601)."""
    out: dict[str, Any] = {"type": message.type, "payload": dict(message.payload)}
    for name in ("correlation_key", "idempotency_key", "concurrency_key", "traceparent"):
        value = getattr(message, name)
        if value is not None:
            out[name] = value
    if message.occurred_at is not None:
        out["occurred_at"] = message.occurred_at.isoformat()
    return out


def message_from_json(data: Mapping[str, Any]) -> SagaMessage:
    """The message ``message_to_json`` wrote."""
    occurred = data.get("occurred_at")
    return SagaMessage(
        type=str(data["type"]), payload=dict(data.get("payload") or {}),
        correlation_key=data.get("correlation_key"), idempotency_key=data.get("idempotency_key"),
        concurrency_key=data.get("concurrency_key"), traceparent=data.get("traceparent"),
        occurred_at=datetime.fromisoformat(occurred) if occurred else None,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Timer:
    """A message this instance scheduled for itself, due at ``due_ms`` (Unix milliseconds)."""

    id: str
    due_ms: int
    message: SagaMessage

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "due_ms": self.due_ms, "message": message_to_json(self.message)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Timer:
        return cls(id=str(data["id"]), due_ms=int(data["due_ms"]),
                   message=message_from_json(data["message"]))


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaInstance:
    """One saga instance: ``(saga_id, correlation_key)`` and everything the runtime keeps.

    ``pending`` instances have not started: they only hold messages parked until a message
    that may start the saga arrives. ``version`` counts the messages applied.
    """

    saga_id: str
    correlation_key: str
    instance_id: str
    status: Status
    state: Any = None
    version: int = 0
    started_at: str | None = None
    updated_at: str | None = None
    result: Mapping[str, Any] | None = None
    error: str | None = None
    parked: tuple[SagaMessage, ...] = ()
    timers: tuple[Timer, ...] = ()
    seen: tuple[str, ...] = ()
    partition: int | None = None
    """The bus partition the instance lives on (the runtime fires its timers from there)."""

    @property
    def key(self) -> str:
        return instance_key(self.saga_id, self.correlation_key)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def remember(self, idempotency_key: str | None) -> SagaInstance:
        if idempotency_key is None:
            return self
        return replace(self, seen=(*self.seen, idempotency_key)[-SEEN_KEYS:])

    def to_json(self) -> dict[str, Any]:
        return {
            "saga_id": self.saga_id, "correlation_key": self.correlation_key,
            "instance_id": self.instance_id, "status": self.status, "state": self.state,
            "version": self.version, "started_at": self.started_at,
            "updated_at": self.updated_at, "result": self.result, "error": self.error,
            "parked": [message_to_json(m) for m in self.parked],
            "timers": [t.to_json() for t in self.timers], "seen": list(self.seen),
            "partition": self.partition,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SagaInstance:
        return cls(
            saga_id=str(data["saga_id"]), correlation_key=str(data["correlation_key"]),
            instance_id=str(data["instance_id"]), status=cast(Status, data["status"]),
            state=data.get("state"), version=int(data.get("version") or 0),
            started_at=data.get("started_at"), updated_at=data.get("updated_at"),
            result=data.get("result"), error=data.get("error"),
            parked=tuple(message_from_json(m) for m in data.get("parked") or ()),
            timers=tuple(Timer.from_json(t) for t in data.get("timers") or ()),
            seen=tuple(data.get("seen") or ()), partition=data.get("partition"),
        )

    def summary(self) -> dict[str, Any]:
        """What the API shows of an instance (no runtime bookkeeping)."""
        data = self.to_json()
        for private in ("seen", "partition", "timers", "parked"):
            data.pop(private)
        data["parked"] = len(self.parked)
        data["timers"] = [{"id": t.id, "type": t.message.type,
                           "due_at": _iso_ms(t.due_ms)} for t in self.timers]
        return data


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    """Where the message being applied came from on the log (``None`` parts for timers)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Transition:
    """One recorded step of an instance: from → to status, because of which message."""

    saga_id: str
    correlation_key: str
    instance_id: str
    event: TransitionEvent
    from_status: Status | None
    to_status: Status
    message_type: str
    version: int
    at: str
    source: Source | None = None
    reason: str | None = None

    @property
    def key(self) -> str:
        return instance_key(self.saga_id, self.correlation_key)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "saga_id": self.saga_id, "correlation_key": self.correlation_key,
            "instance_id": self.instance_id, "event": self.event, "from": self.from_status,
            "to": self.to_status, "message_type": self.message_type, "version": self.version,
            "at": self.at, "reason": self.reason,
        }
        if self.source is not None:
            out["partition"] = self.source.partition
            out["offset"] = self.source.offset
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transition:
        source = None
        if data.get("offset") is not None:
            source = Source(topic="", partition=int(data["partition"]),
                            offset=int(data["offset"]))
        return cls(
            saga_id=str(data["saga_id"]), correlation_key=str(data["correlation_key"]),
            instance_id=str(data["instance_id"]), event=data["event"],
            from_status=data.get("from"), to_status=data["to"],
            message_type=str(data["message_type"]), version=int(data["version"]),
            at=str(data["at"]), source=source, reason=data.get("reason"),
        )


OutputKind = Literal["bus", "command", "dead_letter"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Output:
    """A record an applied message emits: to the saga bus (another instance), to
    ``sagas.commands`` (a service or job), or to the dead-letter topic."""

    kind: OutputKind
    key: str
    value: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


def bus_value(saga_id: str, message: SagaMessage) -> dict[str, Any]:
    """The value of a bus record: which saga, and the message."""
    return {"saga": saga_id, "message": message_to_json(message)}


def iso(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC, to the millisecond."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _iso_ms(ms: int) -> str:
    return iso(datetime.fromtimestamp(ms / 1000, UTC))
