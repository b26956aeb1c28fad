"""Authoring sagas: the builder, its definition-time errors, effects, and the seed's examples."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mypy import api as mypy_api

from services.sagas import (
    Compensate,
    Complete,
    Effect,
    Fail,
    Saga,
    SagaContext,
    SagaDefinitionError,
    SagaMessage,
    Send,
    Target,
    define_saga,
    parse_delay,
    saga_complete,
    schedule,
    send,
    spawn,
)
from services.sagas._errors import SagaReservedFeatureWarning
from services.sagas.examples import OrderState, order_saga, user_settings_saga

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def noop(saga: Saga[dict[str, str]], event: SagaMessage, context: SagaContext
         ) -> Sequence[Effect]:
    return []


def run(definition: object, saga: Saga, message: SagaMessage, *, compensation: bool = False
        ) -> Sequence[Effect]:
    handlers = definition.compensations if compensation else definition.handlers  # type: ignore[attr-defined]
    context = SagaContext(saga_id=saga.id, instance_id=saga.instance_id,
                          correlation_key="k", message=message, attempt=1, now=NOW)
    return handlers[message.type](saga, message, context)  # type: ignore[no-any-return]


def test_build_freezes_every_part_of_the_definition() -> None:
    """build() returns a frozen definition with the id, tier, state, handlers and options."""
    with pytest.warns(SagaReservedFeatureWarning):
        definition = (define_saga("s").durability("t2").correlate("id").retry(max_attempts=5)
                      .concurrency(limit=2).schedule("*/5 * * * *").state({"n": "0"})
                      .on("A", noop).compensate("A", noop).on_query("count", lambda s, a: s)
                      .on("ScheduleTick", noop).build())
    assert (definition.id, definition.durability, definition.initial_state) == ("s", "t2",
                                                                                  {"n": "0"})
    assert set(definition.handlers) == {"A", "ScheduleTick"}
    assert definition.start_types == {"A", "ScheduleTick"}
    assert set(definition.compensations) == {"A"}
    assert definition.retry.max_attempts == 5
    assert definition.concurrency is not None
    assert definition.concurrency.limit == 2
    assert definition.schedule == "*/5 * * * *"
    assert definition.message_types() == {"A", "ScheduleTick"}
    with pytest.raises(TypeError):
        definition.handlers["B"] = noop  # type: ignore[index]


def test_signals_and_queries_warn_that_the_runtime_does_not_dispatch_them() -> None:
    """on_signal/on_query store the handler but warn that the runtime never calls it."""
    initial: dict[str, str] = {}
    builder = define_saga("reserved").state(initial).on("A", noop)
    with pytest.warns(SagaReservedFeatureWarning,
                      match=r"'reserved': \.on_signal\('cancel'\) is reserved — the runtime "
                            r"does not dispatch signals yet.*stored.*never called") as signal:
        builder = builder.on_signal("cancel", noop)
    with pytest.warns(SagaReservedFeatureWarning,
                      match=r"\.on_query\('count'\) is reserved — the runtime does not "
                            r"dispatch queries yet.*never called"):
        builder = builder.on_query("count", lambda state, args: state)
    assert issubclass(SagaReservedFeatureWarning, UserWarning)
    # The warning points at the definition, where the reserved call is written.
    assert signal[0].filename == __file__
    definition = builder.build()
    assert definition.signals is not None
    assert definition.queries is not None
    assert set(definition.signals) == {"cancel"}
    assert set(definition.queries) == {"count"}


@pytest.mark.parametrize(("build", "problem"), [
    (lambda: define_saga("s").on("A", noop), "before registering a handler"),  # type: ignore[arg-type]
    (lambda: define_saga("s").build(), "register a handler"),
    (lambda: define_saga("s").state({}).build(), "at least one handler"),
    (lambda: define_saga("s").state({}).on("A", noop).on("A", noop), "registered twice"),
    (lambda: define_saga("s").durability("t9"), "unknown durability tier 't9'"),  # type: ignore[arg-type]
    (lambda: define_saga("s").schedule("every minute"), "invalid cron"),
    (lambda: define_saga("s").schedule("* * * * *").state({}).on("A", noop).build(),
     "ScheduleTick', handler"),
    (lambda: define_saga("s").state({}).on("A", noop, payload="sagas/nope.avsc"),
     "cannot be loaded"),
    (lambda: define_saga("s").concurrency(limit=0), "at least 1"),
    (lambda: define_saga("s").state({}).on("A", noop).compensate("B", noop).build(),
     "compensation for 'B' has no"),
    (lambda: define_saga("bad id!"), "the id must be"),
])
def test_misuse_fails_at_definition_time(build: object, problem: str) -> None:
    """Each misuse raises SagaDefinitionError naming the saga and what to change."""
    with pytest.raises(SagaDefinitionError, match=problem):
        build()  # type: ignore[operator]


def test_the_type_checker_rejects_a_handler_before_state(tmp_path: Path) -> None:
    """mypy flags .on() before .state() and a handler typed for another state."""
    source = tmp_path / "saga_misuse.py"
    source.write_text(textwrap.dedent("""
        from collections.abc import Sequence
        from services.sagas import Effect, Saga, SagaContext, SagaMessage, define_saga

        def handler(saga: Saga[int], event: SagaMessage, context: SagaContext) -> Sequence[Effect]:
            return []

        def before_state() -> None:
            define_saga("a").on("A", handler)

        def wrong_state() -> None:
            builder = define_saga("b").state("text")
            builder.on("A", handler)
    """))
    out, _err, status = mypy_api.run([str(source), "--strict", "--no-incremental"])
    assert status == 1
    assert 'Argument 1 to "on" of "SagaBuilder"' in out
    assert 'Argument 2 to "on" of "StatefulSagaBuilder"' in out


def test_correlation_derives_the_key_from_the_payload() -> None:
    """Without a correlation_key the rule reads the payload; an explicit key wins."""
    assert order_saga.correlation_key(SagaMessage(type="OrderPlaced",
                                                  payload={"orderId": "o-1"})) == "o-1"
    assert order_saga.correlation_key(SagaMessage(type="OrderPlaced", payload={"orderId": "o-1"},
                                                  correlation_key="x")) == "x"
    assert order_saga.correlation_key(SagaMessage(type="OrderPlaced", payload={})) is None


def test_order_saga_charges_then_compensates_with_a_refund() -> None:
    """The seed's order saga: charge on OrderPlaced, refund and fail on FulfillmentFailed."""
    saga = Saga(id="order-saga", instance_id="i1", state=order_saga.initial_state)
    placed = run(order_saga, saga, SagaMessage(type="OrderPlaced", payload={"orderId": "o-1"}))
    assert placed == [Send(target=Target(kind="service", id="payments"),
                           payload={"orderId": "o-1"}, idempotency_key="charge:o-1")]
    run(order_saga, saga, SagaMessage(type="PaymentCaptured",
                                      payload={"orderId": "o-1", "paymentId": "p-9"}))
    assert saga.state == OrderState(status="awaiting-fulfillment", order_id="o-1",
                                    payment_id="p-9")
    failed = SagaMessage(type="FulfillmentFailed", payload={"orderId": "o-1", "reason": "oos"})
    (compensate,) = run(order_saga, saga, failed)
    assert isinstance(compensate, Compensate)
    assert compensate.reason == "oos"
    refund, fail = run(order_saga, saga, compensate.message, compensation=True)
    assert isinstance(refund, Send)
    assert refund.payload == {"refund": "p-9"}
    assert isinstance(fail, Fail)
    assert "o-1 unfulfilled: oos" in fail.reason
    assert saga.state.status == "refunded"
    assert order_saga.initial_state == OrderState(status="awaiting-payment")


def test_user_settings_saga_completes_with_the_injected_clock() -> None:
    """UserSettingsCreated completes the instance, stamped with the context's clock."""
    saga = Saga(id="user-settings-saga", instance_id="i", state=user_settings_saga.initial_state)
    (done,) = run(user_settings_saga, saga,
                  SagaMessage(type="UserSettingsCreated", payload={"userId": "u-1"}))
    assert done == saga_complete({"userId": "u-1", "processedAt": NOW.isoformat()})
    assert isinstance(done, Complete)
    assert saga.state.status == "completed"


def test_effect_helpers() -> None:
    """schedule accepts datetimes, timedeltas, ms and '30s'-style strings; spawn and send."""
    message = SagaMessage(type="Tick")
    assert schedule(message, "30s").delay_ms == 30_000
    assert schedule(message, timedelta(minutes=5)).delay_ms == 300_000
    assert schedule(message, 250).delay_ms == 250
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert schedule(message, at).at == at
    assert [parse_delay(d) for d in ("5m", "2h", "1d")] == [300_000, 7_200_000, 86_400_000]
    for bad in ("soon", -1, "5 weeks"):
        with pytest.raises(ValueError, match="delay"):
            parse_delay(bad)  # type: ignore[arg-type]
    assert spawn(user_settings_saga, {"userId": "u"}).child == "user-settings-saga"
    assert send({"kind": "job", "id": "create-user-settings"}).target.kind == "job"
    with pytest.raises(ValueError, match="target kind"):
        send({"kind": "email", "id": "x"})
