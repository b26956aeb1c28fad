"""Sagas for the ``kv`` runtime's failure and choreography tests (``--sagas`` reference:
``tests.sagas.failing_sagas:ALL``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.sagas import (
    Effect,
    Saga,
    SagaContext,
    SagaDefinition,
    SagaMessage,
    define_saga,
    saga_complete,
    send,
    spawn,
)

State = dict[str, Any]
EMPTY: State = {}


def _attempt(saga: Saga[State], event: SagaMessage, context: SagaContext
             ) -> Sequence[Effect]:
    if event.payload.get("fail"):
        raise ValueError(f"cannot process {event.payload['id']}")
    return [saga_complete({"id": event.payload["id"]})]


flaky_saga: SagaDefinition[State] = (
    define_saga("flaky-saga").correlate("id").retry(max_attempts=3, backoff_ms=50)
    .state(EMPTY).on("Attempt", _attempt).build()
)
"""Raises on ``Attempt`` messages with ``fail: true``; completes the others."""


def _adopt(saga: Saga[State], event: SagaMessage, context: SagaContext
           ) -> Sequence[Effect]:
    parent = str(event.payload["id"])
    saga.state = {"child": f"{parent}-kid", "box": f"{parent}-box"}
    return [spawn("child-saga", {"childId": saga.state["child"], "parent": parent}),
            send({"kind": "saga", "id": "mailbox-saga"},
                 {"type": "Deliver", "payload": {"box": saga.state["box"], "from": parent}})]


parent_saga: SagaDefinition[State] = (
    define_saga("parent-saga").correlate("id").state(EMPTY).on("Adopt", _adopt).build()
)
"""Spawns a ``child-saga`` and sends a ``Deliver`` to a ``mailbox-saga`` instance."""


def _born(saga: Saga[State], event: SagaMessage, context: SagaContext
          ) -> Sequence[Effect]:
    return [saga_complete({"parent": event.payload["parent"]})]


child_saga: SagaDefinition[State] = (
    define_saga("child-saga").correlate("childId").state(EMPTY).on("Born", _born).build()
)


def _deliver(saga: Saga[State], event: SagaMessage, context: SagaContext
             ) -> Sequence[Effect]:
    return [saga_complete({"from": event.payload["from"]})]


mailbox_saga: SagaDefinition[State] = (
    define_saga("mailbox-saga").correlate("box").state(EMPTY).on("Deliver", _deliver).build()
)

ALL = (flaky_saga, parent_saga, child_saga, mailbox_saga)
SPEC = "tests.sagas.failing_sagas:ALL"
