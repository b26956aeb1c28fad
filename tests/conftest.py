"""Fixtures shared by the whole suite.

By default the suite starts the embedded log itself; ``--kafka=host:port`` points the
integration tests at an external broker (Redpanda or Kafka) instead.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.log import Broker
from services.log.testing import BrokerProcess


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kafka",
        default=None,
        metavar="HOST:PORT",
        help="run the integration tests against this external Kafka-compatible broker",
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Bootstrap servers of the broker the integration tests share (one process per session)."""
    external = request.config.getoption("--kafka")
    if external:
        yield external
        return
    with BrokerProcess(tmp_path_factory.mktemp("shared-broker") / "data") as broker:
        yield broker.bootstrap_servers


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    """A broker inside the test's event loop, on a free port with its own data directory."""
    async with Broker.serve(port=0, data_dir=tmp_path / "log") as running:
        yield running


@pytest.fixture
def topic() -> str:
    """A topic name no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans the test's code finishes, in memory (the global tracer provider is swapped)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = trace._TRACER_PROVIDER  # the API offers no public way to swap providers back
    trace._TRACER_PROVIDER = provider
    try:
        yield exporter
    finally:
        trace._TRACER_PROVIDER = previous
