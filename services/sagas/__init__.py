"""Durable sagas: message-driven state machines whose effects and state commit together.

Define one with :func:`define_saga` — ``.state(initial)``, ``.on(type, handler)``,
``.compensate(type, handler)``, ``.correlate(rule)``, ``.build()`` — and return effects from
handlers (:func:`saga_complete`, :func:`saga_fail`, :func:`saga_compensate`, :func:`send`,
:func:`schedule`, :func:`spawn`). The runtime and the :8092 API come with the rest of issue 4.
"""

from services.sagas._builder import SagaBuilder, StatefulSagaBuilder, define_saga
from services.sagas._definition import (
    DURABILITY_TIERS,
    ConcurrencyLimit,
    DurabilityTier,
    RetryPolicy,
    Saga,
    SagaContext,
    SagaDefinition,
    SagaHandler,
)
from services.sagas._effects import (
    Compensate,
    Complete,
    Effect,
    Fail,
    Scheduled,
    Send,
    Spawn,
    Target,
    parse_delay,
    saga_compensate,
    saga_complete,
    saga_fail,
    schedule,
    send,
    spawn,
)
from services.sagas._errors import SagaDefinitionError, SagaError
from services.sagas._messages import SagaMessage

__all__ = [
    "DURABILITY_TIERS",
    "Compensate",
    "Complete",
    "ConcurrencyLimit",
    "DurabilityTier",
    "Effect",
    "Fail",
    "RetryPolicy",
    "Saga",
    "SagaBuilder",
    "SagaContext",
    "SagaDefinition",
    "SagaDefinitionError",
    "SagaError",
    "SagaHandler",
    "SagaMessage",
    "Scheduled",
    "Send",
    "Spawn",
    "StatefulSagaBuilder",
    "Target",
    "define_saga",
    "parse_delay",
    "saga_compensate",
    "saga_complete",
    "saga_fail",
    "schedule",
    "send",
    "spawn",
]
