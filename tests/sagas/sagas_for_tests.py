"""Saga definitions the tests run besides the seed's examples (``--sagas`` references)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.sagas import (
    Effect,
    Saga,
    SagaContext,
    SagaMessage,
    define_saga,
    saga_complete,
    schedule,
)
from services.sagas.examples import EXAMPLES


def _start(saga: Saga[dict[str, Any]], event: SagaMessage, context: SagaContext
           ) -> Sequence[Effect]:
    saga.state = {**saga.state, "started": context.now.isoformat()}
    return [schedule({"type": "Remind", "payload": {"id": event.payload["id"]}},
                     str(event.payload.get("delay", "2s")))]


def _remind(saga: Saga[dict[str, Any]], event: SagaMessage, context: SagaContext
            ) -> Sequence[Effect]:
    saga.state = {**saga.state, "reminded": saga.state.get("reminded", 0) + 1}
    return [saga_complete({"reminded": saga.state["reminded"]})]


reminder_saga = (
    define_saga("reminder-saga").correlate("id").state({"reminded": 0})
    .on("Start", _start, starts=True).on("Remind", _remind).build()
)


def _noop(saga: Saga[dict[str, Any]], event: SagaMessage, context: SagaContext
          ) -> Sequence[Effect]:
    return []


limited_saga = (
    define_saga("limited-saga").correlate("id").concurrency(limit=1)
    .state({}).on("Work", _noop).build()
)



def _count(saga: Saga[dict[str, Any]], event: SagaMessage, context: SagaContext
           ) -> Sequence[Effect]:
    count = saga.state["n"] + 1
    saga.state = {"n": count}
    return [saga_complete({"n": count})] if count >= int(event.payload.get("of", 10)) else []


counter_saga = (
    define_saga("counter-saga").correlate("id").state({"n": 0})
    .on("Count", _count, starts=True).build()
)
"""Counts ``Count`` messages and completes at ``of`` (the sagas benchmark's workload)."""

ALL = (*EXAMPLES, reminder_saga, limited_saga, counter_saga)
SPEC = "tests.sagas.sagas_for_tests:ALL"
