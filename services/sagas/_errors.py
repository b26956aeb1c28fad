"""Errors of the sagas capability.

::

    NetScriptError
    └── SagaError
        └── SagaDefinitionError   a saga was defined wrongly (raised at definition time)
"""

from __future__ import annotations

from services._errors import NetScriptError


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
    instance and dead-letters the message."""

    def __init__(self, saga_id: str, message_type: str, cause: BaseException) -> None:
        self.saga_id = saga_id
        self.message_type = message_type
        self.cause = cause
        super().__init__(f"saga {saga_id!r}: the {message_type!r} handler raised "
                         f"{type(cause).__name__}: {cause}")


class SagaStoreConfigError(SagaError):
    """The saga store backend is not chosen, unknown, or lacks what it needs."""
