"""The saga engine: applies one message to one instance, with no I/O.

Both store backends drive it the same way: load the instance a message names, call
:meth:`SagaEngine.apply`, then write the returned :class:`Step` — the new instance, its
transitions and its output records — atomically with the consumed offset (a Kafka transaction
for ``kv``, a Postgres transaction for ``postgres``). Because the engine is deterministic given
(instance, message, clock), a message replayed after a crash yields the same step, and every
effect gets the same idempotency key (``<instance id>:<version>:<index>``) both times.

One call may deliver several messages: a start message releases the messages parked before
it, and :meth:`SagaEngine.fire_timers` delivers every due timer. When one of them raises, the
:class:`SagaHandlerError` names that message (``message``, and ``timer`` for a timer) and
carries what the call delivered before it (``step``), so the driver retries or dead-letters
the message that failed — not the one it happened to hold — and loses no earlier progress.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.sagas._builder import SCHEDULE_TICK
from services.sagas._definition import Saga, SagaContext, SagaDefinition
from services.sagas._effects import Compensate, Complete, Effect, Fail, Scheduled, Send, Spawn
from services.sagas._errors import (
    MissingCorrelationKeyError,
    SagaError,
    SagaHandlerError,
    UnknownMessageTypeError,
    UnknownSagaError,
)
from services.sagas._messages import SagaMessage
from services.sagas._payloads import PayloadIssue
from services.sagas._records import (
    Output,
    SagaInstance,
    Source,
    Status,
    Timer,
    Transition,
    TransitionEvent,
    bus_value,
    instance_key,
    iso,
    message_to_json,
)
from services.sagas._state import StateCodec

_INSTANCE_NAMESPACE = uuid.UUID("6f1c2a52-3a8e-4f8e-9d55-2b1f0a6f7c10")


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    """Where a published message goes: the saga and the instance's correlation key."""

    saga_id: str
    correlation_key: str

    @property
    def key(self) -> str:
        return instance_key(self.saga_id, self.correlation_key)


@dataclass(kw_only=True, slots=True)
class Step:
    """What applying messages to one instance produced; written atomically by the driver."""

    instance: SagaInstance
    transitions: list[Transition] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)


def instance_id_for(saga_id: str, correlation_key: str) -> str:
    """The instance id of ``(saga_id, correlation_key)``: stable, so replays agree on it."""
    return str(uuid.uuid5(_INSTANCE_NAMESPACE, instance_key(saga_id, correlation_key)))


class SagaEngine:
    """The registered definitions and the rules that apply messages to their instances."""

    def __init__(self, definitions: Iterable[SagaDefinition[Any]]) -> None:
        self._definitions: dict[str, SagaDefinition[Any]] = {}
        for definition in definitions:
            if definition.id in self._definitions:
                raise SagaError(f"saga {definition.id!r} is registered twice")
            self._definitions[definition.id] = definition
        self._codecs = {d.id: StateCodec(d.initial_state) for d in self._definitions.values()}

    @property
    def definitions(self) -> Mapping[str, SagaDefinition[Any]]:
        return self._definitions

    def definition(self, saga_id: str) -> SagaDefinition[Any]:
        try:
            return self._definitions[saga_id]
        except KeyError:
            raise UnknownSagaError(saga_id, sorted(self._definitions)) from None

    # -- the publish side -------------------------------------------------------------------

    def route(self, message: SagaMessage, saga_id: str | None = None) -> list[Route]:
        """The instances ``message`` goes to: one per saga handling its type (or ``saga_id``).

        Raises :class:`UnknownMessageTypeError`, :class:`UnknownSagaError` or
        :class:`MissingCorrelationKeyError`.
        """
        if saga_id is not None:
            definition = self.definition(saga_id)
            if message.type not in definition.message_types():
                raise UnknownMessageTypeError(message.type, sorted(definition.message_types()))
            targets = [definition]
        else:
            targets = [d for d in self._definitions.values() if message.type in d.handlers]
            if not targets:
                known = sorted({t for d in self._definitions.values() for t in d.handlers})
                raise UnknownMessageTypeError(message.type, known)
        routes = []
        for definition in targets:
            key = definition.correlation_key(message)
            if not key:
                raise MissingCorrelationKeyError(definition.id, message.type)
            routes.append(Route(saga_id=definition.id, correlation_key=key))
        return routes

    def payload_issues(self, saga_id: str, message: SagaMessage) -> list[PayloadIssue]:
        """What is wrong with ``message``'s payload for ``saga_id`` (empty when it fits)."""
        schemas = self.definition(saga_id).payloads or {}
        schema = schemas.get(message.type)
        return [] if schema is None else schema.issues(message.payload)

    # -- the processor side -----------------------------------------------------------------

    def apply(self, instance: SagaInstance | None, *, saga_id: str, correlation_key: str,
              message: SagaMessage, now: datetime, source: Source | None,
              partition: int | None = None, attempt: int = 1) -> Step:
        """Apply ``message`` to the instance (``None``: it does not exist yet).

        A message that starts a pending instance also delivers the messages parked on it, in
        their arrival order, within the same step.

        Raises :class:`SagaHandlerError` when a handler (or an effect it returned) raises;
        nothing is changed then — retry, or give up with :meth:`fail`. The error's ``message``
        is the message whose handler raised: a parked one when the start message released it,
        with ``step`` holding the start (and earlier parked messages) delivered before it.
        """
        definition = self.definition(saga_id)
        if instance is None:
            instance = self._new(saga_id, correlation_key, partition)
        step = Step(instance=instance)
        self._deliver(step, definition, message, now=now, source=source, attempt=attempt)
        return step

    def fire_timers(self, instance: SagaInstance, *, now: datetime, source: Source | None,
                    attempt: int = 1) -> Step | None:
        """Deliver the instance's due timers, earliest first (``None`` when none is due).

        A delivered timer leaves ``instance.timers``, so writing the step fires it once.

        Raises :class:`SagaHandlerError` when a timer's handler raises, with ``timer`` the
        failing timer, ``message`` its message and ``step`` the timers delivered before it
        (``None`` when it was the first due). ``error.step.instance`` still holds the failing
        timer and those due after it: a driver may write that step and retry the failing timer
        on a later tick, or give up with :meth:`fail`, which keeps that progress.
        """
        now_ms = int(now.timestamp() * 1000)
        due = sorted((t for t in instance.timers if t.due_ms <= now_ms),
                     key=lambda t: (t.due_ms, t.id))
        if not due:
            return None
        definition = self.definition(instance.saga_id)
        step = Step(instance=instance)
        for index, timer in enumerate(due):
            before = step.instance
            step.instance = replace(before, timers=tuple(t for t in before.timers if t != timer))
            try:
                self._deliver(step, definition, timer.message, now=now, source=source,
                              attempt=attempt)
            except SagaHandlerError as error:
                error.timer = timer
                error.step = (Step(instance=before, transitions=list(step.transitions),
                                   outputs=list(step.outputs)) if index else None)
                raise
        return step

    def fail(self, instance: SagaInstance | None, *, saga_id: str, correlation_key: str,
             message: SagaMessage, error: SagaHandlerError, attempts: int, now: datetime,
             source: Source | None, partition: int | None = None) -> Step:
        """Give up on a message whose handler kept raising: the instance fails.

        The message that failed — ``error.message``, else ``message`` — goes to the
        dead-letter topic with the error in its headers (``x-error-type``,
        ``x-error-message``, ``x-error-attempts``; ``x-saga-timer-id`` for a timer), and the
        failed transition names it. What the failing call delivered before it
        (``error.step``: the start message ahead of a failing parked message, the timers due
        before a failing timer) is kept, so the outcome is the one those messages would have
        had arriving one by one; ``instance`` must be the one that call was given.

        The failed instance keeps no parked messages (each is recorded as ignored) and no
        timers: a failed instance ignores every later message anyway. The idempotency keys of
        ``message`` and the failing message are remembered, so redeliveries are ignored too.
        """
        failing = error.message or message
        if error.step is not None:
            step = Step(instance=error.step.instance, transitions=list(error.step.transitions),
                        outputs=list(error.step.outputs))
        else:
            step = Step(instance=instance if instance is not None
                        else self._new(saga_id, correlation_key, partition))
        before = step.instance
        reason = f"{error} (after {attempts} attempt{'s' if attempts != 1 else ''})"
        failed = replace(before, status="failed", error=reason, updated_at=iso(now),
                         version=before.version + 1, parked=(), timers=())
        for key in (message.idempotency_key, failing.idempotency_key):
            if key not in failed.seen:
                failed = failed.remember(key)
        step.instance = failed
        step.transitions.append(self._transition(
            failed, "saga:failed", before.status, failing, now, source, reason))
        dropped = list(before.parked)
        if failing in dropped:
            dropped.remove(failing)
        for waiting in dropped:
            self._ignore(step, waiting, now, source,
                         "the instance failed before this parked message was delivered")
        cause = error.cause
        headers = {"x-error-type": type(cause).__name__, "x-error-message": str(cause)[:4096],
                   "x-error-attempts": str(attempts), "x-saga-id": failed.saga_id,
                   "x-saga-instance-id": failed.instance_id}
        if error.timer is not None:
            headers["x-saga-timer-id"] = error.timer.id
        step.outputs.append(Output(kind="dead_letter", key=failed.key,
                                   value=bus_value(failed.saga_id, failing), headers=headers))
        return step

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _new(saga_id: str, correlation_key: str, partition: int | None) -> SagaInstance:
        return SagaInstance(saga_id=saga_id, correlation_key=correlation_key,
                            instance_id=instance_id_for(saga_id, correlation_key),
                            status="pending", partition=partition)

    def _deliver(self, step: Step, definition: SagaDefinition[Any], message: SagaMessage, *,
                 now: datetime, source: Source | None, attempt: int) -> None:
        instance = step.instance
        if instance.terminal:
            self._ignore(step, message, now, source, f"the instance is {instance.status}")
            return
        key = message.idempotency_key
        if key is not None and (key in instance.seen
                                or any(m.idempotency_key == key for m in instance.parked)):
            self._ignore(step, message, now, source, f"duplicate idempotency key {key!r}")
            return
        if message.type not in definition.handlers:
            self._ignore(step, message, now, source, f"no handler for {message.type!r}")
            return
        if instance.status == "pending":
            if not definition.starts(message.type):
                step.instance = replace(instance, parked=(*instance.parked, message),
                                        updated_at=iso(now))
                step.transitions.append(self._transition(
                    step.instance, "saga:parked", "pending", message, now, source,
                    f"waiting for {' or '.join(sorted(definition.start_types))} to start "
                    "the instance"))
                return
            parked = instance.parked
            step.instance = replace(
                instance, status="running", parked=(), started_at=iso(now),
                state=self._codecs[definition.id].encode(definition.initial_state))
            self._run(step, definition, message, now=now, source=source, attempt=attempt,
                      started=True)
            for index, waiting in enumerate(parked):
                try:
                    # The driver retries the start message, so its attempt is theirs too.
                    self._deliver(step, definition, waiting, now=now, source=source,
                                  attempt=attempt)
                except SagaHandlerError as error:
                    error.step = Step(instance=replace(step.instance, parked=parked[index:]),
                                      transitions=list(step.transitions),
                                      outputs=list(step.outputs))
                    raise
            return
        self._run(step, definition, message, now=now, source=source, attempt=attempt,
                  started=False)

    def _run(self, step: Step, definition: SagaDefinition[Any], message: SagaMessage, *,
             now: datetime, source: Source | None, attempt: int, started: bool) -> None:
        before = step.instance
        codec = self._codecs[definition.id]
        saga = Saga(id=definition.id, instance_id=before.instance_id,
                    state=codec.decode(before.state))
        context = SagaContext(saga_id=definition.id, instance_id=before.instance_id,
                              correlation_key=before.correlation_key, message=message,
                              attempt=attempt, now=now, traceparent=message.traceparent)
        version = before.version + 1
        pending: list[Transition] = []
        if started:
            pending.append(self._transition(before, "saga:started", "pending", message, now,
                                            source, None, status="running", version=version))
        try:
            effects = list(definition.handlers[message.type](saga, message, context))
            outcome = _Outcome(status=before.status)
            self._effects(outcome, definition, saga, context, effects, version, prefix="")
            state = codec.encode(saga.state)
        except Exception as exc:
            raise SagaHandlerError(definition.id, message.type, exc, message=message) from exc
        after = replace(before, status=outcome.status, state=state, version=version,
                        updated_at=iso(now), result=outcome.result or before.result,
                        error=outcome.error or before.error,
                        timers=(*before.timers, *outcome.timers)
                        ).remember(message.idempotency_key)
        step.instance = after
        step.transitions.extend(pending)
        if outcome.compensating_from is not None:
            step.transitions.append(self._transition(
                after, "saga:compensating", outcome.compensating_from, message, now, source,
                outcome.compensation_reason, status="compensating"))
        event: TransitionEvent = (
            "saga:completed" if after.status == "completed"
            else "saga:failed" if after.status == "failed"
            else "saga:state_changed")
        if not (started and event == "saga:state_changed"):
            origin = "compensating" if outcome.compensating_from else (
                "running" if started else before.status)
            step.transitions.append(self._transition(after, event, origin, message, now, source,
                                                     outcome.error))
        step.outputs.extend(outcome.outputs)

    def _effects(self, outcome: _Outcome, definition: SagaDefinition[Any], saga: Saga[Any],
                 context: SagaContext, effects: Sequence[Effect], version: int, *,
                 prefix: str) -> None:
        for index, effect in enumerate(effects):
            effect_id = f"{saga.instance_id}:{version}:{prefix}{index}"
            match effect:
                case Complete(result=result):
                    outcome.status = "completed"
                    outcome.result = dict(result) if result is not None else None
                case Fail(reason=reason):
                    outcome.status = "failed"
                    outcome.error = reason
                case Compensate(message=wrapped, reason=reason):
                    self._compensate(outcome, definition, saga, context, wrapped, reason,
                                     version, prefix=f"{prefix}{index}.")
                case Send():
                    outcome.outputs.append(self._send(effect, saga, context, effect_id))
                case Scheduled(message=wrapped, delay_ms=delay_ms, at=at):
                    due = at if at is not None else context.now + timedelta(
                        milliseconds=delay_ms or 0)
                    message = replace(wrapped, correlation_key=context.correlation_key,
                                      idempotency_key=wrapped.idempotency_key or effect_id)
                    outcome.timers.append(Timer(id=effect_id, message=message,
                                                due_ms=int(due.timestamp() * 1000)))
                case Spawn():
                    outcome.outputs.append(self._spawn(effect, saga, context, effect_id))
                case _:
                    raise TypeError(f"a handler returned {effect!r}, which is not an effect; "
                                    "return saga_complete/saga_fail/send/schedule/spawn/...")

    def _compensate(self, outcome: _Outcome, definition: SagaDefinition[Any], saga: Saga[Any],
                    context: SagaContext, message: SagaMessage, reason: str | None,
                    version: int, *, prefix: str) -> None:
        if outcome.compensating_from is not None:
            raise RuntimeError("a compensation requested another compensation")
        outcome.compensating_from = outcome.status
        outcome.compensation_reason = reason
        outcome.status = "compensating"
        handler = definition.compensations.get(message.type)
        if handler is None:
            outcome.status = "failed"
            outcome.error = (f"compensation for {message.type!r} requested ({reason}) but the "
                             "saga has no .compensate() handler for it")
            return
        inner = replace(context, message=message)
        self._effects(outcome, definition, saga, inner, list(handler(saga, message, inner)),
                      version, prefix=prefix)

    def _send(self, effect: Send, saga: Saga[Any], context: SagaContext, effect_id: str
              ) -> Output:
        key = effect.idempotency_key or effect_id
        origin = {"id": saga.id, "instance_id": saga.instance_id,
                  "correlation_key": context.correlation_key}
        headers = {"idempotency-key": key}
        if context.traceparent:
            headers["traceparent"] = context.traceparent
        if effect.target.kind == "saga":
            payload = dict(effect.payload)
            if "type" not in payload:
                raise ValueError(f"send to saga {effect.target.id!r} needs a payload with the "
                                 "message 'type' (and its 'payload')")
            message = SagaMessage(type=str(payload["type"]),
                                  payload=dict(payload.get("payload") or {}),
                                  correlation_key=payload.get("correlation_key"),
                                  idempotency_key=key, traceparent=context.traceparent)
            [route] = self.route(message, saga_id=effect.target.id)
            message = replace(message, correlation_key=route.correlation_key)
            return Output(kind="bus", key=route.key, value=bus_value(route.saga_id, message),
                          headers=headers)
        value: dict[str, Any] = {
            "target": {"kind": effect.target.kind, "id": effect.target.id},
            "payload": dict(effect.payload), "idempotency_key": key,
            "concurrency_key": effect.concurrency_key, "queue": effect.queue, "saga": origin,
        }
        return Output(kind="command", key=effect.target.id, value=value, headers=headers)

    def _spawn(self, effect: Spawn, saga: Saga[Any], context: SagaContext, effect_id: str
               ) -> Output:
        child = self.definition(effect.child)
        key = effect.idempotency_key or effect_id
        message = SagaMessage(type=_spawn_type(child), payload=dict(effect.input),
                              idempotency_key=key, concurrency_key=effect.concurrency_key,
                              traceparent=context.traceparent)
        correlation = child.correlation_key(message) or key
        message = replace(message, correlation_key=correlation)
        headers = {"idempotency-key": key, "x-saga-parent": saga.instance_id}
        return Output(kind="bus", key=instance_key(child.id, correlation),
                      value=bus_value(child.id, message), headers=headers)

    def _ignore(self, step: Step, message: SagaMessage, now: datetime, source: Source | None,
                reason: str) -> None:
        step.transitions.append(self._transition(step.instance, "saga:ignored",
                                                 step.instance.status, message, now, source,
                                                 reason))

    @staticmethod
    def _transition(instance: SagaInstance, event: TransitionEvent, from_status: Status | None,
                    message: SagaMessage, now: datetime, source: Source | None,
                    reason: str | None, *, status: Status | None = None,
                    version: int | None = None) -> Transition:
        return Transition(
            saga_id=instance.saga_id, correlation_key=instance.correlation_key,
            instance_id=instance.instance_id, event=event, from_status=from_status,
            to_status=status or instance.status, message_type=message.type,
            version=instance.version if version is None else version, at=iso(now),
            source=source, reason=reason)


@dataclass(kw_only=True, slots=True)
class _Outcome:
    status: Status
    result: dict[str, Any] | None = None
    error: str | None = None
    outputs: list[Output] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    compensating_from: Status | None = None
    compensation_reason: str | None = None


def _spawn_type(child: SagaDefinition[Any]) -> str:
    """The message type a spawn starts ``child`` with: its first ``.on()`` type that may start
    it. Not the cron tick (a scheduled child also starts on those), and in registration order
    rather than sorted, so the choice does not depend on how the types are spelled."""
    starts = [t for t in child.handlers if child.starts(t) and t != SCHEDULE_TICK]
    return starts[0] if starts else sorted(child.start_types)[0]


def utc_now() -> datetime:
    """The runtime's default clock."""
    return datetime.now(UTC)


__all__ = ["Route", "SagaEngine", "Step", "instance_id_for", "message_to_json", "utc_now"]
