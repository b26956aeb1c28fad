"""Tracing: a saga step joins the trace of the request that published its message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.kernel import Publisher, Settings, ensure_topics, tracer
from services.log.testing import BrokerProcess
from services.sagas import SagaEngine, SagaMessage
from services.sagas._postgres_store import PostgresSagaStore
from services.sagas._records import bus_value, instance_key
from services.sagas._topics import BUS, topic_configs
from services.sagas.examples import EXAMPLES
from tests.log._poll import eventually
from tests.sagas._support import running


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[str]:
    """A log of this test's own, saga topics created."""
    with BrokerProcess(tmp_path / "log") as broker:
        await ensure_topics(broker.bootstrap_servers, topic_configs(2))
        yield broker.bootstrap_servers


async def test_the_saga_step_span_continues_the_publishers_trace(
        spans: InMemorySpanExporter, pool: asyncpg.Pool, log: str) -> None:
    """publish (send sagas.bus) → consume (process sagas.bus) → saga step: one trace, with the
    step's span a child of the consume span and the new status recorded on it."""
    message = SagaMessage(type="UserSettingsCreated", payload={"userId": "t1"},
                          correlation_key="t1")
    async with Publisher(Settings(service_name="test", kafka_bootstrap_servers=log)) as pub:
        with tracer().start_as_current_span("request") as root:
            await pub.publish(BUS, json.dumps(bus_value("user-settings-saga", message)).encode(),
                              key=instance_key("user-settings-saga", "t1").encode())
    async with running(SagaEngine(EXAMPLES), pool, log), PostgresSagaStore(pool) as store:
        async def completed() -> bool:
            found = await store.get("user-settings-saga", "t1")
            return found is not None and found.status == "completed"

        await eventually(completed, timeout=30, what="the instance to complete")
    by_name = {span.name: span for span in spans.get_finished_spans()}
    step = by_name["saga user-settings-saga UserSettingsCreated"]
    consume = by_name["process sagas.bus"]
    trace_id = root.get_span_context().trace_id
    assert {step.context.trace_id, consume.context.trace_id,
            by_name["send sagas.bus"].context.trace_id} == {trace_id}
    assert step.parent is not None
    assert step.parent.span_id == consume.context.span_id
    assert step.attributes is not None
    assert step.attributes["saga.status"] == "completed"
