"""Errors of the sagas capability.

::

    NetScriptError
    └── SagaError
        ├── SagaDefinitionError         a saga was defined wrongly (raised at definition time)
        ├── UnknownMessageTypeError     no registered saga handles a message type
        ├── UnknownSagaError            a saga id that is not registered
        ├── MissingCorrelationKeyError  a message names no instance
        ├── SagaHandlerError            a handler raised (retried, then the instance fails)
        ├── SagaStoreConfigError        the store backend is not chosen or lacks what it needs
        ├── SagaRuntimeError            the postgres runtime lost Postgres or the log
        └── SagaPublisherConfigError    (_publisher) the publisher cannot find the sagas API

    UserWarning
    └── SagaReservedFeatureWarning      a builder feature the runtime does not run yet
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services._errors import NetScriptError

if TYPE_CHECKING:
    from services.sagas._engine import Step
    from services.sagas._messages import SagaMessage
    from services.sagas._records import Timer


class SagaError(NetScriptError):
    """Base class of the sagas capability's errors."""


class SagaDefinitionError(SagaError):
    """A saga definition is invalid; the message says what to change."""

    def __init__(self, saga_id: str, problem: str) -> None:
        self.saga_id = saga_id
        self.problem = problem
        super().__init__(f"saga {saga_id!r}: {problem}")


class UnknownMessageTypeError(SagaError):
    """No registered saga handles a message of this type."""

    def __init__(self, message_type: str, known: list[str]) -> None:
        self.message_type = message_type
        self.known = known
        super().__init__(f"no saga handles messages of type {message_type!r}; known types: "
                         f"{', '.join(known) or '(none)'}")


class UnknownSagaError(SagaError):
    """A saga id that is not registered with the runtime."""

    def __init__(self, saga_id: str, known: list[str]) -> None:
        self.saga_id = saga_id
        self.known = known
        super().__init__(f"no saga {saga_id!r} is registered; registered: "
                         f"{', '.join(known) or '(none)'}")


class MissingCorrelationKeyError(SagaError):
    """A message names no instance: no ``correlation_key`` and the saga's rule found none."""

    def __init__(self, saga_id: str, message_type: str) -> None:
        self.saga_id = saga_id
        self.message_type = message_type
        super().__init__(
            f"a {message_type!r} message for saga {saga_id!r} has no correlation key: set "
            "correlation_key, or include the payload field the saga's .correlate() rule reads")


class SagaHandlerError(SagaError):
    """A handler (or an effect it returned) raised; the runtime retries, then fails the
    instance and dead-letters the message (:meth:`SagaEngine.fail`).

    ``message`` is the message whose handler raised. It is not always the one the driver
    applied: a start message also delivers the messages parked before it, and ``fire_timers``
    delivers every due timer — ``timer`` is then the timer that failed. ``step`` is what the
    same call delivered before the failure (``None`` when the failing message came first);
    ``SagaEngine.fail`` keeps it, and a timer driver may write it and retry only ``timer``.
    """

    def __init__(self, saga_id: str, message_type: str, cause: BaseException, *,
                 message: SagaMessage | None = None, timer: Timer | None = None,
                 step: Step | None = None) -> None:
        self.saga_id = saga_id
        self.message_type = message_type
        self.cause = cause
        self.message = message
        self.timer = timer
        self.step = step
        super().__init__(f"saga {saga_id!r}: the {message_type!r} handler raised "
                         f"{type(cause).__name__}: {cause}")


class SagaStoreConfigError(SagaError):
    """The saga store backend is not chosen, unknown, or lacks what it needs."""


class SagaReservedFeatureWarning(UserWarning):
    """A builder feature the seed reserves and the runtime does not run yet (signals,
    queries): the definition stores the handler, but nothing ever calls it."""


class SagaRuntimeError(SagaError):
    """The ``postgres`` saga runtime cannot use its database or the log; the message says
    which and what to check. The runtime stops: nothing it had not committed is lost."""
