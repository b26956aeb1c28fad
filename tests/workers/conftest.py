"""Fixtures of the workers tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.kernel import ensure_topics
from services.log.testing import BrokerProcess
from services.workers._topics import topic_configs


@pytest.fixture
def workers_log(tmp_path: Path) -> Iterator[str]:
    """A private log with the workers' topics: dispatchers and pools of other tests (and
    their tables) never meet this test's."""
    with BrokerProcess(tmp_path / "log") as broker:
        asyncio.run(ensure_topics(broker.bootstrap_servers, topic_configs()))
        yield broker.bootstrap_servers
