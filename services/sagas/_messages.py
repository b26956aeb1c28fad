"""The message a saga reacts to (the seed's ``SagaMessage``, in snake_case)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaMessage:
    """An event or command for a saga: ``type`` discriminates, ``payload`` is its body.

    Without a ``correlation_key`` the saga definition's correlation rule derives one from the
    payload; ``idempotency_key`` lets the runtime drop a redelivered message.
    """

    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    correlation_key: str | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    occurred_at: datetime | None = None
    traceparent: str | None = None

    def __post_init__(self) -> None:
        if not self.type:
            raise ValueError("a saga message needs a non-empty type")
