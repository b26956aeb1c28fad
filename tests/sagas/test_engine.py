"""The saga engine, pure (no broker): parking, idempotency, effects, timers, failures, replay
and the cron ticker, with an injected clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.sagas import (
    Effect,
    Saga,
    SagaContext,
    SagaDefinition,
    SagaEngine,
    SagaHandlerError,
    SagaInstance,
    SagaMessage,
    Step,
    Transition,
    define_saga,
    saga_compensate,
    saga_complete,
    saga_fail,
    schedule,
    send,
    spawn,
)
from services.sagas._engine import instance_id_for
from services.sagas._errors import (
    MissingCorrelationKeyError,
    UnknownMessageTypeError,
    UnknownSagaError,
)
from services.sagas._records import Output, Source, bus_value, message_from_json
from services.sagas._schedule import CronTicker

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BUS = Source(topic="sagas.bus", partition=0, offset=7)
FLOW_ID = instance_id_for("flow", "k")

State = dict[str, Any]


def _record(saga: Saga[State], event: SagaMessage) -> None:
    saga.state = {**saga.state, "log": [*saga.state["log"], event.payload.get("tag", event.type)]}


def _record_only(saga: Saga[State], event: SagaMessage, context: SagaContext
                 ) -> Sequence[Effect]:
    _record(saga, event)
    return []


def _boom(saga: Saga[State], event: SagaMessage, context: SagaContext) -> Sequence[Effect]:
    raise RuntimeError(f"boom {event.payload.get('tag', '')}".strip())


def _done(saga: Saga[State], event: SagaMessage, context: SagaContext) -> Sequence[Effect]:
    _record(saga, event)
    return [saga_complete({"log": saga.state["log"]})]


def _undo(saga: Saga[State], event: SagaMessage, context: SagaContext) -> Sequence[Effect]:
    return [saga_compensate(event, "undo requested")]


def _compensate_undo(saga: Saga[State], event: SagaMessage, context: SagaContext
                     ) -> Sequence[Effect]:
    saga.state = {**saga.state, "log": [*saga.state["log"], "compensated"]}
    effects: list[Effect] = [send({"kind": "service", "id": "payments"}, {"refund": "p-1"})]
    if event.payload.get("fail"):
        effects.append(saga_fail("undone"))
    return effects


def _orphan(saga: Saga[State], event: SagaMessage, context: SagaContext) -> Sequence[Effect]:
    # "Step" has a forward handler but no compensation.
    return [saga_compensate({"type": "Step"}, "nothing undoes Step")]


def _later(saga: Saga[State], event: SagaMessage, context: SagaContext) -> Sequence[Effect]:
    return [schedule({"type": "Remind", "payload": {"tag": r["tag"], "boom": r.get("boom")}},
                     r["after"]) for r in event.payload["reminders"]]


def _remind(saga: Saga[State], event: SagaMessage, context: SagaContext) -> Sequence[Effect]:
    if event.payload.get("boom"):
        raise RuntimeError(f"reminder {event.payload['tag']} broke")
    _record(saga, event)
    return []


def _dispatch(saga: Saga[State], event: SagaMessage, context: SagaContext) -> Sequence[Effect]:
    return [
        send({"kind": "service", "id": "payments"}, {"charge": 10}),
        send({"kind": "job", "id": "mailer"}, {"to": "u-1"}, idempotency_key="mail:u-1",
             concurrency_key="u-1", queue="mail"),
        send({"kind": "saga", "id": "child"}, {"type": "Poke", "payload": {"childId": "c-1"}}),
    ]


def _send_to(saga: Saga[State], event: SagaMessage, context: SagaContext) -> Sequence[Effect]:
    return [send({"kind": "saga", "id": event.payload["target"]}, event.payload["body"])]


def _spawn(saga: Saga[State], event: SagaMessage, context: SagaContext) -> Sequence[Effect]:
    return [spawn("child", {"childId": "c-7"})]


START: State = {"log": []}

flow: SagaDefinition[State] = (
    define_saga("flow").correlate("id").state(START)
    .on("Begin", _record_only, starts=True)
    .on("Step", _record_only)
    .on("Boom", _boom)
    .on("Done", _done)
    .on("Undo", _undo).compensate("Undo", _compensate_undo)
    .on("Orphan", _orphan)
    .on("Later", _later)
    .on("Remind", _remind)
    .on("Dispatch", _dispatch)
    .on("SendTo", _send_to)
    .on("Spawn", _spawn)
    .build()
)

# A scheduled child: it also starts on ScheduleTick, which sorts before its own "Start".
child: SagaDefinition[State] = (
    define_saga("child").correlate("childId").schedule("0 0 1 1 *").state(START)
    .on("Start", _record_only).on("Poke", _record_only).on("ScheduleTick", _record_only)
    .build()
)


@pytest.fixture
def engine() -> SagaEngine:
    """An engine with the test sagas registered."""
    return SagaEngine([flow, child])


def msg(type_: str, *, key: str | None = None, **payload: Any) -> SagaMessage:
    return SagaMessage(type=type_, payload=payload, correlation_key="k", idempotency_key=key)


def apply(engine: SagaEngine, instance: SagaInstance | None, message: SagaMessage, *,
          now: datetime = NOW, attempt: int = 1) -> Step:
    return engine.apply(instance, saga_id="flow", correlation_key="k", message=message, now=now,
                        source=BUS, partition=0, attempt=attempt)


def run(engine: SagaEngine, *messages: SagaMessage) -> SagaInstance:
    instance: SagaInstance | None = None
    for message in messages:
        instance = apply(engine, instance, message).instance
    assert instance is not None
    return instance


def events(step: Step) -> list[tuple[str, str]]:
    return [(t.event, t.message_type) for t in step.transitions]


# -- starting, parking, idempotency ------------------------------------------------------------


def test_a_start_message_starts_the_instance(engine: SagaEngine) -> None:
    """The start type creates a running instance from the initial state, version 1."""
    step = apply(engine, None, msg("Begin"))
    assert step.instance.status == "running"
    assert step.instance.instance_id == FLOW_ID
    assert step.instance.state == {"log": ["Begin"]}
    assert step.instance.version == 1
    assert step.instance.started_at == "2026-11-23T12:00:00.000+00:00"
    assert events(step) == [("saga:started", "Begin")]
    assert step.transitions[0].source == BUS
    assert step.outputs == []


def test_messages_before_the_start_are_parked_then_delivered_in_order(engine: SagaEngine
                                                                      ) -> None:
    """Non-start messages wait on a pending instance; the start delivers them after itself,
    and a parked message whose idempotency key is already parked is ignored."""
    first = apply(engine, None, msg("Step", key="s-1", tag="one"))
    assert first.instance.status == "pending"
    assert events(first) == [("saga:parked", "Step")]
    assert first.transitions[0].reason == "waiting for Begin to start the instance"
    duplicate = apply(engine, first.instance, msg("Step", key="s-1", tag="again"))
    assert events(duplicate) == [("saga:ignored", "Step")]
    assert duplicate.transitions[0].reason == "duplicate idempotency key 's-1'"
    second = apply(engine, duplicate.instance, msg("Step", tag="two"))
    assert [m.payload["tag"] for m in second.instance.parked] == ["one", "two"]

    started = apply(engine, second.instance, msg("Begin"))
    assert started.instance.status == "running"
    assert started.instance.parked == ()
    assert started.instance.state == {"log": ["Begin", "one", "two"]}
    assert events(started) == [("saga:started", "Begin"), ("saga:state_changed", "Step"),
                               ("saga:state_changed", "Step")]
    # The delivered parked message's key is remembered: its redelivery is ignored.
    late = apply(engine, started.instance, msg("Step", key="s-1", tag="late"))
    assert events(late) == [("saga:ignored", "Step")]
    assert late.instance == started.instance


def test_a_duplicate_idempotency_key_is_ignored(engine: SagaEngine) -> None:
    """A message whose idempotency key the instance has seen changes nothing."""
    instance = run(engine, msg("Begin"), msg("Step", key="once", tag="x"))
    step = apply(engine, instance, msg("Step", key="once", tag="x"))
    assert step.instance == instance
    assert events(step) == [("saga:ignored", "Step")]
    assert step.outputs == []


def test_a_terminal_instance_ignores_messages(engine: SagaEngine) -> None:
    """After completion, a message is recorded as ignored and changes nothing."""
    instance = run(engine, msg("Begin"), msg("Done"))
    assert instance.status == "completed"
    assert instance.result == {"log": ["Begin", "Done"]}
    step = apply(engine, instance, msg("Dispatch"))
    assert step.instance == instance
    assert events(step) == [("saga:ignored", "Dispatch")]
    assert step.transitions[0].reason == "the instance is completed"
    assert step.outputs == []


def test_a_message_without_handler_is_ignored(engine: SagaEngine) -> None:
    """A type the saga does not handle is recorded as ignored, not parked or failed."""
    instance = run(engine, msg("Begin"))
    step = apply(engine, instance, msg("Unknown"))
    assert events(step) == [("saga:ignored", "Unknown")]
    assert step.instance == instance


# -- compensation ------------------------------------------------------------------------------


def test_a_compensation_that_fails_the_instance(engine: SagaEngine) -> None:
    """saga_compensate routes into the compensation handler; its saga_fail fails the
    instance, and its effects get keys under the compensate effect's index."""
    instance = run(engine, msg("Begin"))
    step = apply(engine, instance, msg("Undo", fail=True))
    assert step.instance.status == "failed"
    assert step.instance.error == "undone"
    assert step.instance.state == {"log": ["Begin", "compensated"]}
    assert [(t.event, t.from_status, t.to_status) for t in step.transitions] == [
        ("saga:compensating", "running", "compensating"),
        ("saga:failed", "compensating", "failed")]
    assert step.transitions[0].reason == "undo requested"
    [refund] = step.outputs
    assert refund.kind == "command"
    assert refund.idempotency_key == f"{FLOW_ID}:2:0.0"


def test_a_compensation_that_does_not_fail_leaves_the_instance_compensating(
        engine: SagaEngine) -> None:
    """A compensation handler without saga_fail/saga_complete leaves it compensating."""
    instance = run(engine, msg("Begin"))
    step = apply(engine, instance, msg("Undo"))
    assert step.instance.status == "compensating"
    assert step.instance.error is None
    assert events(step) == [("saga:compensating", "Undo"), ("saga:state_changed", "Undo")]
    assert [o.value["payload"] for o in step.outputs] == [{"refund": "p-1"}]
    # Not terminal: it still takes messages.
    later = apply(engine, step.instance, msg("Step", tag="after"))
    assert later.instance.state["log"][-1] == "after"


def test_a_missing_compensation_handler_fails_the_instance(engine: SagaEngine) -> None:
    """Compensating a type without .compensate() fails the instance, saying which."""
    instance = run(engine, msg("Begin"))
    step = apply(engine, instance, msg("Orphan"))
    assert step.instance.status == "failed"
    assert step.instance.error == (
        "compensation for 'Step' requested (nothing undoes Step) but the saga has no "
        ".compensate() handler for it")
    assert events(step) == [("saga:compensating", "Orphan"), ("saga:failed", "Orphan")]


# -- send, spawn, schedule ---------------------------------------------------------------------


def test_send_to_a_service_or_job_is_a_command_keyed_by_instance_version_index(
        engine: SagaEngine) -> None:
    """send to a service/job is a command whose idempotency key is
    <instance>:<version>:<index> unless the effect gives one."""
    instance = run(engine, msg("Begin"))
    step = apply(engine, instance, msg("Dispatch"))
    payments, mailer, _poke = step.outputs
    assert payments == Output(
        kind="command", key="payments",
        value={"target": {"kind": "service", "id": "payments"}, "payload": {"charge": 10},
               "idempotency_key": f"{FLOW_ID}:2:0", "concurrency_key": None, "queue": None,
               "saga": {"id": "flow", "instance_id": FLOW_ID, "correlation_key": "k"}},
        headers={"idempotency-key": f"{FLOW_ID}:2:0"})
    assert mailer.kind == "command"
    assert mailer.key == "mailer"
    assert mailer.idempotency_key == "mail:u-1"
    assert (mailer.value["target"], mailer.value["concurrency_key"], mailer.value["queue"]) == (
        {"kind": "job", "id": "mailer"}, "u-1", "mail")


def test_send_to_a_saga_is_a_bus_record_routed_by_its_correlation_rule(engine: SagaEngine
                                                                       ) -> None:
    """send to a saga target goes on the bus, keyed by the target's instance."""
    instance = run(engine, msg("Begin"))
    poke = apply(engine, instance, msg("Dispatch")).outputs[2]
    assert poke.kind == "bus"
    assert poke.key == "child/c-1"
    expected = SagaMessage(type="Poke", payload={"childId": "c-1"}, correlation_key="c-1",
                           idempotency_key=f"{FLOW_ID}:2:2")
    assert poke.value == bus_value("child", expected)
    assert poke.idempotency_key == f"{FLOW_ID}:2:2"


@pytest.mark.parametrize(("target", "body", "cause", "says"), [
    ("nope", {"type": "Poke", "payload": {"childId": "c"}}, UnknownSagaError,
     "no saga 'nope' is registered; registered: child, flow"),
    ("child", {"payload": {"childId": "c"}}, ValueError,
     "send to saga 'child' needs a payload with the message 'type'"),
    ("child", {"type": "Nudge", "payload": {"childId": "c"}}, UnknownMessageTypeError,
     "no saga handles messages of type 'Nudge'"),
    ("child", {"type": "Poke", "payload": {}}, MissingCorrelationKeyError,
     "has no correlation key"),
])
def test_send_to_a_saga_that_cannot_take_it_is_a_handler_error(
        engine: SagaEngine, target: str, body: dict[str, Any], cause: type[Exception],
        says: str) -> None:
    """An unknown saga, a body without type, an unhandled type or no correlation key raise
    SagaHandlerError whose cause says what is wrong."""
    instance = run(engine, msg("Begin"))
    with pytest.raises(SagaHandlerError) as raised:
        apply(engine, instance, msg("SendTo", target=target, body=body))
    assert isinstance(raised.value.cause, cause)
    assert says in str(raised.value)


def test_spawn_starts_the_child_with_its_start_type(engine: SagaEngine) -> None:
    """spawn is a bus record for the child's instance with its (non-cron) start type, and
    applying it starts the child."""
    instance = run(engine, msg("Begin"))
    [output] = apply(engine, instance, msg("Spawn")).outputs
    assert output.kind == "bus"
    assert output.key == "child/c-7"
    assert output.headers == {"idempotency-key": f"{FLOW_ID}:2:0", "x-saga-parent": FLOW_ID}
    assert output.value["saga"] == "child"
    message = message_from_json(output.value["message"])
    assert (message.type, message.correlation_key) == ("Start", "c-7")
    started = engine.apply(None, saga_id="child", correlation_key="c-7", message=message,
                           now=NOW, source=BUS)
    assert started.instance.status == "running"
    assert started.instance.state == {"log": ["Start"]}


def test_schedule_fires_once_at_the_injected_time(engine: SagaEngine) -> None:
    """schedule makes a timer due at now + delay; fire_timers delivers it once."""
    instance = run(engine, msg("Begin"), msg("Later", reminders=[{"tag": "r", "after": "30s"}]))
    [timer] = instance.timers
    assert timer.id == f"{FLOW_ID}:2:0"
    assert timer.due_ms == int((NOW + timedelta(seconds=30)).timestamp() * 1000)
    assert timer.message.correlation_key == "k"
    assert timer.message.idempotency_key == timer.id
    assert engine.fire_timers(instance, now=NOW + timedelta(seconds=29), source=None) is None

    fired = engine.fire_timers(instance, now=NOW + timedelta(seconds=30), source=None)
    assert fired is not None
    assert fired.instance.timers == ()
    assert fired.instance.state == {"log": ["Begin", "r"]}
    assert events(fired) == [("saga:state_changed", "Remind")]
    assert fired.transitions[0].source is None
    assert engine.fire_timers(fired.instance, now=NOW + timedelta(minutes=5), source=None) is None
    # Redelivered anyway (a driver crash between steps), its key makes it a duplicate.
    again = apply(engine, fired.instance, timer.message)
    assert events(again) == [("saga:ignored", "Remind")]


# -- failures ----------------------------------------------------------------------------------


def test_a_raising_handler_raises_and_fail_dead_letters_the_message(engine: SagaEngine) -> None:
    """A handler that raises → SagaHandlerError naming it; fail() → a failed instance with
    the error and a dead_letter output with x-error-* headers."""
    instance = run(engine, msg("Begin"))
    boom = msg("Boom", key="b-1", tag="x")
    with pytest.raises(SagaHandlerError) as raised:
        apply(engine, instance, boom)
    error = raised.value
    assert (error.saga_id, error.message_type, error.message) == ("flow", "Boom", boom)
    assert (error.timer, error.step) == (None, None)
    assert isinstance(error.cause, RuntimeError)
    assert str(error) == "saga 'flow': the 'Boom' handler raised RuntimeError: boom x"

    step = engine.fail(instance, saga_id="flow", correlation_key="k", message=boom, error=error,
                       attempts=3, now=NOW, source=BUS, partition=0)
    assert step.instance.status == "failed"
    assert step.instance.error == f"{error} (after 3 attempts)"
    assert step.instance.state == {"log": ["Begin"]}
    assert step.instance.version == 2
    assert "b-1" in step.instance.seen
    assert [(t.event, t.from_status, t.message_type) for t in step.transitions] == [
        ("saga:failed", "running", "Boom")]
    assert step.outputs == [Output(
        kind="dead_letter", key="flow/k", value=bus_value("flow", boom),
        headers={"x-error-type": "RuntimeError", "x-error-message": "boom x",
                 "x-error-attempts": "3", "x-saga-id": "flow", "x-saga-instance-id": FLOW_ID})]
    late = apply(engine, step.instance, msg("Step"))
    assert events(late) == [("saga:ignored", "Step")]


def test_a_first_message_that_fails_creates_a_failed_instance(engine: SagaEngine) -> None:
    """fail() on a message for no instance yet records a failed one (and the key)."""
    begin = msg("Begin", key="start-1")
    error = SagaHandlerError("flow", "Begin", ValueError("bad input"), message=begin)
    step = engine.fail(None, saga_id="flow", correlation_key="k", message=begin, error=error,
                       attempts=1, now=NOW, source=BUS, partition=1)
    assert (step.instance.status, step.instance.partition, step.instance.seen) == (
        "failed", 1, ("start-1",))
    assert step.instance.error is not None
    assert step.instance.error.endswith("(after 1 attempt)")
    assert [(t.event, t.from_status) for t in step.transitions] == [("saga:failed", "pending")]


def test_a_failing_parked_message_is_the_one_dead_lettered(engine: SagaEngine) -> None:
    """When a parked message released by the start raises, the error names it; fail() keeps
    the start's progress, dead-letters the parked message, records the rest as ignored and
    keeps no parked messages."""
    pending = run(engine, msg("Step", tag="one"), msg("Boom", key="boom-1", tag="p"),
                  msg("Step", tag="three"))
    begin = msg("Begin", key="begin-1")
    with pytest.raises(SagaHandlerError) as raised:
        apply(engine, pending, begin, attempt=2)
    error = raised.value
    assert error.message == msg("Boom", key="boom-1", tag="p")
    assert error.step is not None
    assert error.step.instance.status == "running"
    assert error.step.instance.state == {"log": ["Begin", "one"]}
    assert [m.payload["tag"] for m in error.step.instance.parked] == ["p", "three"]

    step = engine.fail(pending, saga_id="flow", correlation_key="k", message=begin, error=error,
                       attempts=3, now=NOW, source=BUS)
    assert step.instance.status == "failed"
    assert step.instance.parked == ()
    assert step.instance.state == {"log": ["Begin", "one"]}
    assert {"begin-1", "boom-1"} <= set(step.instance.seen)
    assert events(step) == [("saga:started", "Begin"), ("saga:state_changed", "Step"),
                            ("saga:failed", "Boom"), ("saga:ignored", "Step")]
    [dead] = step.outputs
    assert dead.kind == "dead_letter"
    assert dead.value == bus_value("flow", msg("Boom", key="boom-1", tag="p"))
    assert dead.headers["x-error-message"] == "boom p"


def test_a_failing_start_message_drops_the_parked_ones(engine: SagaEngine) -> None:
    """When the start message itself keeps raising, fail() dead-letters it and records each
    parked message as ignored instead of keeping them on a failed instance."""
    pending = run(engine, msg("Step", tag="one"))
    start = SagaMessage(type="Begin", correlation_key="k")
    error = SagaHandlerError("flow", "Begin", RuntimeError("down"), message=start)
    step = engine.fail(pending, saga_id="flow", correlation_key="k", message=start, error=error,
                       attempts=2, now=NOW, source=BUS)
    assert step.instance.parked == ()
    assert events(step) == [("saga:failed", "Begin"), ("saga:ignored", "Step")]
    assert step.outputs[0].value == bus_value("flow", start)


def test_a_failing_timer_does_not_lose_the_timers_before_it(engine: SagaEngine) -> None:
    """fire_timers raises naming the failing timer, with the earlier timers' step; retrying
    fires only the failing timer again, and fail() keeps the earlier ones' progress,
    dead-letters the failing timer's message and drops every timer."""
    instance = run(engine, msg("Begin"), msg("Later", reminders=[
        {"tag": "r1", "after": "10s"}, {"tag": "r2", "after": "20s", "boom": True},
        {"tag": "r3", "after": "30s"}]))
    _r1, r2, r3 = instance.timers
    now = NOW + timedelta(minutes=1)
    with pytest.raises(SagaHandlerError) as raised:
        engine.fire_timers(instance, now=now, source=None)
    error = raised.value
    assert (error.timer, error.message, error.message_type) == (r2, r2.message, "Remind")
    assert error.step is not None
    assert error.step.instance.state == {"log": ["Begin", "r1"]}
    assert error.step.instance.timers == (r2, r3)
    assert events(error.step) == [("saga:state_changed", "Remind")]

    # A driver that wrote error.step retries only r2: it is then the first to fail.
    with pytest.raises(SagaHandlerError) as retried:
        engine.fire_timers(error.step.instance, now=now, source=None, attempt=2)
    assert (retried.value.timer, retried.value.step) == (r2, None)

    step = engine.fail(instance, saga_id="flow", correlation_key="k", message=r2.message,
                       error=error, attempts=3, now=now, source=None)
    assert step.instance.status == "failed"
    assert step.instance.timers == ()
    assert step.instance.state == {"log": ["Begin", "r1"]}
    assert events(step) == [("saga:state_changed", "Remind"), ("saga:failed", "Remind")]
    [dead] = step.outputs
    assert dead.value == bus_value("flow", r2.message)
    assert dead.headers["x-saga-timer-id"] == r2.id
    assert dead.headers["x-error-message"] == "reminder r2 broke"
    assert engine.fire_timers(step.instance, now=now, source=None) is None


# -- determinism -------------------------------------------------------------------------------


def _replay(engine: SagaEngine) -> tuple[list[dict[str, Any]], list[Transition], list[Output]]:
    script = [msg("Step", tag="early"), msg("Begin"), msg("Dispatch"), msg("Spawn"),
              msg("Later", reminders=[{"tag": "r1", "after": "1m"}, {"tag": "r2", "after": "2m"}]),
              msg("Undo")]
    instance: SagaInstance | None = None
    transitions: list[Transition] = []
    outputs: list[Output] = []
    for offset, message in enumerate(script):
        step = engine.apply(instance, saga_id="flow", correlation_key="k", message=message,
                            now=NOW + timedelta(seconds=offset),
                            source=Source(topic="sagas.bus", partition=0, offset=offset))
        instance = step.instance
        transitions += step.transitions
        outputs += step.outputs
    assert instance is not None
    fired = engine.fire_timers(instance, now=NOW + timedelta(minutes=3), source=None)
    assert fired is not None
    transitions += fired.transitions
    outputs += fired.outputs
    return [instance.to_json(), fired.instance.to_json()], transitions, outputs


def test_replaying_the_same_messages_yields_the_same_steps() -> None:
    """Two engines applying the same messages from scratch agree on instances, transitions
    and outputs (ids, idempotency keys and timestamps included)."""
    first = _replay(SagaEngine([flow, child]))
    second = _replay(SagaEngine([flow, child]))
    assert first == second
    instances, transitions, outputs = first
    assert instances[1]["state"]["log"] == ["Begin", "early", "compensated", "r1", "r2"]
    assert len(transitions) == 10
    assert [o.kind for o in outputs] == ["command", "command", "bus", "bus", "command"]


# -- the cron ticker ---------------------------------------------------------------------------


def _tick(saga: Saga[State], event: SagaMessage, context: SagaContext) -> Sequence[Effect]:
    saga.state = {"ticks": saga.state["ticks"] + 1}
    return []


NO_TICKS: State = {"ticks": 0}
quarterly: SagaDefinition[State] = (
    define_saga("quarterly").schedule("*/15 * * * *").state(NO_TICKS)
    .on("ScheduleTick", _tick).build())


def test_cron_ticker_yields_each_cron_time_once_between_calls() -> None:
    """due(now) yields one ScheduleTick per cron time since the previous call, keyed by the
    tick's minute; nothing twice."""
    ticker = CronTicker(SagaEngine([quarterly]), start=datetime(2026, 11, 23, 12, 0, 30,
                                                                tzinfo=UTC))
    first = list(ticker.due(datetime(2026, 11, 23, 12, 44, 59, tzinfo=UTC)))
    assert [key for key, _ in first] == ["quarterly/2026-11-23T12:15+00:00",
                                         "quarterly/2026-11-23T12:30+00:00"]
    assert first[0][1] == bus_value("quarterly", SagaMessage(
        type="ScheduleTick", payload={"scheduled_at": "2026-11-23T12:15+00:00"},
        correlation_key="2026-11-23T12:15+00:00", idempotency_key="cron:2026-11-23T12:15+00:00"))
    assert [k for k, _ in ticker.due(datetime(2026, 11, 23, 12, 45, tzinfo=UTC))] == [
        "quarterly/2026-11-23T12:45+00:00"]
    assert list(ticker.due(datetime(2026, 11, 23, 12, 59, 59, tzinfo=UTC))) == []
    assert list(CronTicker(SagaEngine([flow]), start=NOW).due(NOW + timedelta(days=1))) == []


def test_a_second_replicas_cron_tick_is_a_duplicate() -> None:
    """Two replicas started at different times yield the same tick, and the engine applies
    it once: the second copy's idempotency key is already seen."""
    engine = SagaEngine([quarterly])
    now = datetime(2026, 11, 23, 12, 15, 2, tzinfo=UTC)
    one = list(CronTicker(engine, start=datetime(2026, 11, 23, 11, 50, tzinfo=UTC)).due(now))
    two = list(CronTicker(engine, start=datetime(2026, 11, 23, 12, 10, tzinfo=UTC)).due(now))
    assert one[-1] == two[-1]
    assert two == [one[-1]]
    instance: SagaInstance | None = None
    recorded: list[str] = []
    for key, value in (one[-1], two[0]):
        message = message_from_json(value["message"])
        assert message.correlation_key is not None
        step = engine.apply(instance, saga_id=value["saga"],
                            correlation_key=message.correlation_key, message=message, now=now,
                            source=None)
        assert step.instance.key == key
        instance = step.instance
        recorded += [t.event for t in step.transitions]
    assert instance is not None
    assert instance.state == {"ticks": 1}
    assert recorded == ["saga:started", "saga:ignored"]
