"""create_saga_publisher against the real sagas API: discovery, typed receipts and
rejections (never an exception for a refused message), publish_many."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from services.kernel import Settings, ensure_topics
from services.kernel.testing import serve_app
from services.log.testing import BrokerProcess, free_port
from services.sagas import SagaMessage
from services.sagas._engine import SagaEngine
from services.sagas._publisher import (
    SagaPublisherConfigError,
    SagaPublisherReceipt,
    SagaPublisherRejected,
    create_saga_publisher,
)
from services.sagas._topics import topic_configs
from services.sagas._views import KvSagaStore, TransitionFeed
from services.sagas.api import create_sagas_app
from tests.sagas.sagas_for_tests import ALL


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A log for this module (the saga topics have fixed names)."""
    with BrokerProcess(tmp_path_factory.mktemp("publisher") / "log") as broker:
        asyncio.run(ensure_topics(broker.bootstrap_servers, topic_configs(2)))
        yield broker.bootstrap_servers


@pytest.fixture
async def sagas_url(log: str) -> AsyncIterator[str]:
    """The sagas API (no runtime needed: publishing only stores on the bus)."""
    feed = TransitionFeed(log)
    app = create_sagas_app(Settings(service_name="sagas", kafka_bootstrap_servers=log),
                           SagaEngine(ALL), KvSagaStore(log, feed), feed=feed, partitions=2)
    async with serve_app(app) as server:
        yield server.url


async def test_discovers_the_api_from_the_topology_environment(sagas_url: str) -> None:
    """services__sagas__http__0 locates the API; the receipt says where the message is."""
    publisher = create_saga_publisher(read_env=lambda: {"services__sagas__http__0": sagas_url})
    async with publisher:
        result = await publisher.publish(
            SagaMessage(type="UserSettingsCreated", payload={"userId": "p1"}))
    assert isinstance(result, SagaPublisherReceipt)
    assert result.published is True
    assert result.offset >= 0
    assert result.position == f"{result.partition}:{result.offset}"
    assert result.deliveries[0]["saga_id"] == "user-settings-saga"


def test_without_a_url_creation_says_which_variable_to_set() -> None:
    """No base_url and no services__sagas__http__0: a configuration error naming it."""
    with pytest.raises(SagaPublisherConfigError, match="services__sagas__http__0"):
        create_saga_publisher(read_env=dict)


async def test_refusals_are_typed_results_not_exceptions(sagas_url: str) -> None:
    """An unknown type is rejected as not retryable; a concurrency refusal (409) and an
    unreachable API as retryable."""
    async with create_saga_publisher(base_url=sagas_url) as publisher:
        unknown = await publisher.publish({"type": "Nope", "payload": {}})
        assert isinstance(unknown, SagaPublisherRejected)
        assert (unknown.published, unknown.retryable, unknown.status) == (False, False, 422)
        assert "no saga handles messages of type 'Nope'" in unknown.reason

        first = await publisher.publish({"type": "Work", "payload": {"id": "c1"}})
        assert first.published is True
        limited = await publisher.publish({"type": "Work", "payload": {"id": "c1"}})
        assert isinstance(limited, SagaPublisherRejected)
        assert (limited.retryable, limited.status) == (True, 409)

    async with create_saga_publisher(base_url=f"http://127.0.0.1:{free_port()}") as offline:
        down = await offline.publish({"type": "Work", "payload": {"id": "c2"}})
    assert isinstance(down, SagaPublisherRejected)
    assert down.retryable is True
    assert "unreachable" in down.reason


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
async def test_publish_many_keeps_the_order_of_results(sagas_url: str, mode: str) -> None:
    """publish_many returns one result per message, in order, in either mode."""
    messages = [{"type": "UserSettingsCreated", "payload": {"userId": f"{mode}-{i}"}}
                for i in range(5)] + [{"type": "Nope", "payload": {}}]
    async with httpx.AsyncClient() as client:
        publisher = create_saga_publisher(base_url=sagas_url, fetcher=client)
        results = await publisher.publish_many(messages, mode=mode)  # type: ignore[arg-type]
    assert [r.published for r in results] == [True] * 5 + [False]
    assert [r.deliveries[0]["correlation_key"] for r in results[:5]  # type: ignore[union-attr]
            ] == [f"{mode}-{i}" for i in range(5)]
