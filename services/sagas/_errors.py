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
