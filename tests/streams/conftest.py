"""Fixtures for the streams tests: the streams gateway on a real port, on the shared log."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.kernel import Settings
from services.kernel.testing import RunningServer, serve_app
from services.streams.api import StreamsConfig, create_streams_app


@pytest.fixture
async def streams_server(kafka_bootstrap: str) -> AsyncIterator[RunningServer]:
    """A streams gateway (long-poll timeout 1 s) on the session's log."""
    settings = Settings.from_env("streams-test", {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    app = create_streams_app(settings, StreamsConfig(long_poll_timeout=1.0, sse_lifetime=10.0))
    async with serve_app(app) as server:
        yield server


@pytest.fixture
async def streams(streams_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose base URL is the protocol's stream root (``/v1/stream``)."""
    async with httpx.AsyncClient(base_url=streams_server.url + "/v1/stream") as client:
        yield client


@pytest.fixture
def stream_path() -> str:
    """A stream path no other test uses."""
    return f"/tests/{uuid.uuid4().hex[:12]}"


NODE_DIR = Path(__file__).parent / "conformance"


@pytest.fixture(scope="session")
def node_dir() -> Path:
    """The npm project of the official clients and conformance suite, installed (npm ci)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("these tests need node and npm on PATH (.ci/run installs them)")
    if not (NODE_DIR / "node_modules" / ".package-lock.json").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       capture_output=True, timeout=600)
    return NODE_DIR
