"""Tracing: a job's span joins the trace of the request that triggered it."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.kernel import Settings, tracer
from services.workers._pool_settings import PoolSettings
from services.workers._pools import serve_pools
from services.workers._trigger import JobClient
from tests.log._poll import eventually
from tests.workers._processes import dispatcher, executions
from tests.workers.jobs_for_tests import ALL


async def test_the_job_span_continues_the_triggers_trace(
        spans: InMemorySpanExporter, workers_log: str, tmp_path: Path) -> None:
    """trigger (a PRODUCER span under the caller's span) → dispatcher → pool: the ``job``
    span is in the caller's trace, a child of the trigger's span, with the job's attributes."""
    settings = PoolSettings(capacity=2, urgent_percentage=0, heartbeat_seconds=0.3,
                            lease_seconds=1.0)
    with dispatcher(workers_log, tmp_path) as proc:
        async with serve_pools(settings, ALL, bootstrap_servers=workers_log), \
                JobClient(ALL, Settings(service_name="test",
                                        kafka_bootstrap_servers=workers_log)) as client:
            with tracer().start_as_current_span("request") as root:
                receipt = await client.trigger("quick", {})

            async def done() -> bool:
                found = await executions(workers_log)
                return found.get(receipt.execution_id, {}).get("status") == "succeeded"

            await eventually(done, timeout=60, what=lambda: f"the job done\n{proc.log()}")
    finished = {s.name: s for s in spans.get_finished_spans()}
    job = finished["job quick"]
    trigger = finished["send workers.jobs"]
    trace_id = root.get_span_context().trace_id
    assert job.context.trace_id == trigger.context.trace_id == trace_id
    assert job.parent is not None
    assert job.parent.span_id == trigger.context.span_id
    assert job.kind is SpanKind.CONSUMER
    assert job.attributes is not None
    assert job.attributes["execution.id"] == receipt.execution_id
    assert job.attributes["job.attempt"] == 1
