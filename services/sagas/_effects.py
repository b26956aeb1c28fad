"""Effects: the only way a saga handler acts on the world.

Handlers are pure: they mutate ``saga.state`` and return a list of effects, which the runtime
applies atomically with the state change (and gives deterministic idempotency keys, so a
consumer can drop a redelivered one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from services.sagas._messages import SagaMessage

TargetKind = Literal["service", "job", "saga"]
_KINDS: dict[str, TargetKind] = {"service": "service", "job": "job", "saga": "saga"}

_DELAY = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """Where a ``send`` goes: a service, a background job, or another saga."""

    kind: TargetKind
    id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Complete:
    """Terminal success, with an optional result."""

    result: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Fail:
    """Terminal failure; later messages to the instance are recorded as ignored."""

    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Compensate:
    """Route ``message`` into the definition's compensation handler for its type."""

    message: SagaMessage
    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Send:
    """Dispatch a command to a target."""

    target: Target
    payload: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    queue: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Scheduled:
    """Deliver ``message`` back to this saga after ``delay_ms`` (or at ``at``)."""

    message: SagaMessage
    delay_ms: int | None = None
    at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Spawn:
    """Start a child saga with ``input`` as its first message payload."""

    child: str
    input: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    concurrency_key: str | None = None


Effect = Complete | Fail | Compensate | Send | Scheduled | Spawn


def saga_complete(result: Mapping[str, Any] | None = None) -> Complete:
    """Finish the instance successfully."""
    return Complete(result=result)


def saga_fail(reason: str | BaseException) -> Fail:
    """Finish the instance as failed, recording ``reason``."""
    return Fail(reason=reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}")


def saga_compensate(message: SagaMessage | Mapping[str, Any], reason: str | None = None
                    ) -> Compensate:
    """Undo an applied step through the compensation handler of ``message``'s type."""
    return Compensate(message=_message(message), reason=reason)


def send(target: Target | Mapping[str, str], payload: Mapping[str, Any] | None = None, *,
         idempotency_key: str | None = None, concurrency_key: str | None = None,
         queue: str | None = None) -> Send:
    """Send ``payload`` to ``target`` (``Target(kind=..., id=...)`` or ``{"kind", "id"}``)."""
    if not isinstance(target, Target):
        kind = _KINDS.get(str(target.get("kind")))
        if kind is None:
            raise ValueError(
                f"target kind must be service, job or saga, not {target.get('kind')!r}")
        target = Target(kind=kind, id=str(target["id"]))
    return Send(target=target, payload=dict(payload or {}), idempotency_key=idempotency_key,
                concurrency_key=concurrency_key, queue=queue)


def schedule(message: SagaMessage | Mapping[str, Any],
             delay: datetime | timedelta | int | str) -> Scheduled:
    """Deliver ``message`` later: at a ``datetime``, after a ``timedelta``, milliseconds, or
    a ``"30s"``/``"5m"``/``"2h"``/``"1d"`` string."""
    if isinstance(delay, datetime):
        at = delay if delay.tzinfo else delay.replace(tzinfo=UTC)
        return Scheduled(message=_message(message), at=at)
    return Scheduled(message=_message(message), delay_ms=parse_delay(delay))


def spawn(child: str | Any, input: Mapping[str, Any] | None = None, *,
          idempotency_key: str | None = None, concurrency_key: str | None = None) -> Spawn:
    """Start a child saga (a definition or its id)."""
    child_id = child if isinstance(child, str) else str(child.id)
    return Spawn(child=child_id, input=dict(input or {}), idempotency_key=idempotency_key,
                 concurrency_key=concurrency_key)


def parse_delay(delay: timedelta | int | str) -> int:
    """A delay in milliseconds; raises ``ValueError`` naming the accepted forms."""
    if isinstance(delay, timedelta):
        ms = int(delay.total_seconds() * 1000)
    elif isinstance(delay, int) and not isinstance(delay, bool):
        ms = delay
    elif isinstance(delay, str) and (match := _DELAY.match(delay)):
        ms = int(match[1]) * _UNIT_MS[match[2]]
    else:
        raise ValueError(
            f"invalid delay {delay!r}: use a datetime, a timedelta, milliseconds, or a string "
            "like '30s', '5m', '2h', '1d'")
    if ms < 0:
        raise ValueError(f"invalid delay {delay!r}: it must not be negative")
    return ms


def _message(message: SagaMessage | Mapping[str, Any]) -> SagaMessage:
    if isinstance(message, SagaMessage):
        return message
    return SagaMessage(type=str(message["type"]), payload=dict(message.get("payload") or {}),
                       correlation_key=message.get("correlation_key"))
