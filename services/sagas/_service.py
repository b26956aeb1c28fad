"""``netscript sagas serve``: the :8092 app with the store its backend names."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from fastapi import FastAPI

from services.kernel import Settings
from services.sagas._engine import SagaEngine
from services.sagas._errors import SagaStoreConfigError
from services.sagas._records import SagaInstance, Status, Transition
from services.sagas._store import InstancePage, SagaStore
from services.sagas._topics import DEFAULT_PARTITIONS
from services.sagas._views import KvSagaStore, TransitionFeed
from services.sagas.api import create_sagas_app


class PooledPostgresStore:
    """The ``postgres`` store over a pool it opens from ``DATABASE_URL`` (and closes)."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._pool: Any = None
        self._store: Any = None

    async def __aenter__(self) -> PooledPostgresStore:
        import asyncpg

        from services.sagas._migrations import apply_migrations
        from services.sagas._postgres_store import PostgresSagaStore

        self._pool = await asyncpg.create_pool(self._url, min_size=1, max_size=8)
        await apply_migrations(self._pool)
        self._store = await PostgresSagaStore(self._pool).__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._store is not None:
            await self._store.close()
        if self._pool is not None:
            await self._pool.close()

    async def get(self, saga_id: str, correlation_key: str) -> SagaInstance | None:
        result: SagaInstance | None = await self._store.get(saga_id, correlation_key)
        return result

    async def list(self, *, saga_id: str | None = None, status: Status | None = None,
                   offset: int = 0, limit: int = 50) -> InstancePage:
        page: InstancePage = await self._store.list(saga_id=saga_id, status=status,
                                                    offset=offset, limit=limit)
        return page

    async def history(self, saga_id: str, correlation_key: str) -> Sequence[Transition]:
        history: Sequence[Transition] = await self._store.history(saga_id, correlation_key)
        return history

    async def applied(self, partition: int, offset: int) -> bool:
        return bool(await self._store.applied(partition, offset))


def create_sagas_service(settings: Settings, engine: SagaEngine, *, backend: str,
                         partitions: int = DEFAULT_PARTITIONS) -> FastAPI:
    """The sagas API reading the ``backend`` store (``kv`` or ``postgres``).

    Raises :class:`SagaStoreConfigError` for ``postgres`` without ``DATABASE_URL``.
    """
    feed = TransitionFeed(settings.kafka_bootstrap_servers)
    store: SagaStore
    if backend == "kv":
        store = KvSagaStore(settings.kafka_bootstrap_servers, feed)
    else:
        if not settings.database_url:
            raise SagaStoreConfigError(
                "the postgres saga store needs DATABASE_URL (requires_db in the topology "
                "sets it); or choose NETSCRIPT_SAGA_STORE=kv")
        store = PooledPostgresStore(settings.database_url)
    return create_sagas_app(settings, engine, store, feed=feed, partitions=partitions,
                            store_backend=backend)
