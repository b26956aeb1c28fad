"""What a saga is once defined: a frozen ``SagaDefinition`` and the handler protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

from services.sagas._effects import Effect
from services.sagas._messages import SagaMessage
from services.sagas._payloads import PayloadSchema

DurabilityTier = Literal["t1", "t2", "t3"]
DURABILITY_TIERS: tuple[DurabilityTier, ...] = ("t1", "t2", "t3")

S = TypeVar("S")


class Saga(Generic[S]):
    """The instance a handler works on: it reads and replaces ``state``."""

    __slots__ = ("id", "instance_id", "state")

    def __init__(self, *, id: str, instance_id: str, state: S) -> None:
        self.id = id
        self.instance_id = instance_id
        self.state = state


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaContext:
    """Read-only facts a handler may use; ``now`` is the runtime's injected clock."""

    saga_id: str
    instance_id: str
    correlation_key: str
    message: SagaMessage
    attempt: int
    now: datetime
    traceparent: str | None = None


class SagaHandler(Protocol[S]):
    """``(saga, event, context) -> effects``: synchronous and pure, mutating ``saga.state``."""

    def __call__(self, saga: Saga[S], event: SagaMessage, context: SagaContext,
                 /) -> Sequence[Effect]: ...


Correlation = Callable[[SagaMessage], str | None]
QueryHandler = Callable[[Any, Mapping[str, Any]], Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often a raising handler is retried before the instance fails."""

    max_attempts: int = 3
    backoff_ms: int = 1000


@dataclass(frozen=True, kw_only=True, slots=True)
class ConcurrencyLimit:
    """At most ``limit`` messages in flight, per ``key(message)`` when given."""

    limit: int
    key: Callable[[SagaMessage], str] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaDefinition(Generic[S]):
    """A saga, frozen by ``build()``: what the runtime registers and runs."""

    id: str
    durability: DurabilityTier
    initial_state: S
    handlers: Mapping[str, SagaHandler[S]]
    compensations: Mapping[str, SagaHandler[S]]
    correlations: tuple[Correlation, ...]
    retry: RetryPolicy
    concurrency: ConcurrencyLimit | None = None
    schedule: str | None = None
    signals: Mapping[str, SagaHandler[S]] | None = None
    queries: Mapping[str, QueryHandler] | None = None
    start_types: frozenset[str] = frozenset()
    """Message types that may start an instance; others arriving first are parked."""
    payloads: Mapping[str, PayloadSchema] | None = None
    """The payload schema of each message type that declared one."""

    def starts(self, message_type: str) -> bool:
        """Whether a message of ``message_type`` may start a new instance."""
        return message_type in self.start_types

    def message_types(self) -> frozenset[str]:
        """Every message type the saga reacts to (forward handlers and compensations)."""
        return frozenset(self.handlers) | frozenset(self.compensations)

    def correlation_key(self, message: SagaMessage) -> str | None:
        """The instance ``message`` belongs to: its own key, else the first rule that answers."""
        if message.correlation_key:
            return message.correlation_key
        for rule in self.correlations:
            key = rule(message)
            if key:
                return key
        return None
