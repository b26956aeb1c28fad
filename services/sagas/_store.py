"""The read side of a saga store: what the :8092 API asks of either backend.

``kv`` answers from materialized views of the log (the instance table's compacted changelog
and ``sagas.transitions``); ``postgres`` from the ``saga_runtime_*`` tables. Both are written
only by the runtime, in the same transaction as the consumed offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from services.sagas._records import SagaInstance, Status, Transition


@dataclass(frozen=True, kw_only=True, slots=True)
class InstancePage:
    """One page of instances and how many match in all."""

    items: Sequence[SagaInstance]
    total: int


class SagaStore(Protocol):
    """Reads of saga instances; implementations are async context managers."""

    async def get(self, saga_id: str, correlation_key: str) -> SagaInstance | None:
        """The instance, or ``None`` when no message for it was applied yet."""
        ...

    async def list(self, *, saga_id: str | None = None, status: Status | None = None,
                   offset: int = 0, limit: int = 50) -> InstancePage:
        """Instances (excluding ``pending`` ones unless asked), newest update first."""
        ...

    async def history(self, saga_id: str, correlation_key: str) -> Sequence[Transition]:
        """The instance's transitions in the order they happened."""
        ...

    async def applied(self, partition: int, offset: int) -> bool:
        """Has the runtime applied the bus record at ``(partition, offset)``? (For
        read-your-writes: the API waits for this before answering a read.)"""
        ...
