"""Durable sagas: message-driven state machines whose effects and state commit together.

Define one with :func:`define_saga` — ``.state(initial)``, ``.on(type, handler)``,
``.compensate(type, handler)``, ``.correlate(rule)``, ``.build()`` — and return effects from
handlers (:func:`saga_complete`, :func:`saga_fail`, :func:`saga_compensate`, :func:`send`,
:func:`schedule`, :func:`spawn`). ``netscript sagas run`` applies messages exactly once
(store: :func:`resolve_saga_store_backend`), ``netscript sagas serve`` is the :8092 API, and
:func:`create_saga_publisher` sends messages to it. See docs/sagas.md.
"""

from services.sagas._backend import resolve_saga_store_backend
from services.sagas._builder import SCHEDULE_TICK, SagaBuilder, StatefulSagaBuilder, define_saga
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
from services.sagas._engine import Route, SagaEngine, Step
from services.sagas._errors import (
    MissingCorrelationKeyError,
    SagaDefinitionError,
    SagaError,
    SagaHandlerError,
    SagaReservedFeatureWarning,
    SagaRuntimeError,
    SagaStoreConfigError,
    UnknownMessageTypeError,
    UnknownSagaError,
)
from services.sagas._loading import load_definitions
from services.sagas._messages import SagaMessage
from services.sagas._payloads import PayloadIssue, PayloadSchema, avro_payload
from services.sagas._publisher import (
    SagaPublisher,
    SagaPublisherConfigError,
    SagaPublisherReceipt,
    SagaPublisherRejected,
    SagaPublishResult,
    create_saga_publisher,
)
from services.sagas._records import SagaInstance, Transition
from services.sagas._store import InstancePage, SagaStore

# The runtime factory pulls in asyncpg and aiokafka; importing the package to define sagas (or
# the plugin, when `netscript up` builds the graph) should not pay for it.
_LAZY = {"DurableSagaRuntime", "create_durable_saga_runtime"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from services.sagas import _runtime

        return getattr(_runtime, name)
    raise AttributeError(f"module 'services.sagas' has no attribute {name!r}")


__all__ = [
    "DURABILITY_TIERS",
    "SCHEDULE_TICK",
    "Compensate",
    "Complete",
    "ConcurrencyLimit",
    "DurabilityTier",
    "DurableSagaRuntime",
    "Effect",
    "Fail",
    "InstancePage",
    "MissingCorrelationKeyError",
    "PayloadIssue",
    "PayloadSchema",
    "RetryPolicy",
    "Route",
    "Saga",
    "SagaBuilder",
    "SagaContext",
    "SagaDefinition",
    "SagaDefinitionError",
    "SagaEngine",
    "SagaError",
    "SagaHandler",
    "SagaHandlerError",
    "SagaInstance",
    "SagaMessage",
    "SagaPublishResult",
    "SagaPublisher",
    "SagaPublisherConfigError",
    "SagaPublisherReceipt",
    "SagaPublisherRejected",
    "SagaReservedFeatureWarning",
    "SagaRuntimeError",
    "SagaStore",
    "SagaStoreConfigError",
    "Scheduled",
    "Send",
    "Spawn",
    "StatefulSagaBuilder",
    "Step",
    "Target",
    "Transition",
    "UnknownMessageTypeError",
    "UnknownSagaError",
    "avro_payload",
    "create_durable_saga_runtime",
    "create_saga_publisher",
    "define_saga",
    "load_definitions",
    "parse_delay",
    "resolve_saga_store_backend",
    "saga_compensate",
    "saga_complete",
    "saga_fail",
    "schedule",
    "send",
    "spawn",
]
