"""``create_durable_saga_runtime``: the runtime, the store the API reads, and ``dispose``.

The seed's ``createDurableSagaRuntime({backend, prisma})``: ``backend="postgres"`` (the seed's
``prisma`` is accepted) builds the ``postgres`` runtime over the caller's asyncpg pool;
``backend="kv"`` delegates to the factory the ``kv`` runtime passes in. Without a backend it
is ``postgres`` when a pool is given and ``kv`` otherwise — the mandatory choice is made by
:func:`~services.sagas._backend.resolve_saga_store_backend` at service start-up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.kernel._settings import DEFAULT_BOOTSTRAP_SERVERS
from services.sagas._engine import SagaEngine
from services.sagas._errors import SagaStoreConfigError
from services.sagas._migrations import apply_migrations
from services.sagas._postgres_runner import PostgresSagaRuntime
from services.sagas._postgres_store import PostgresSagaStore
from services.sagas._store import SagaStore

_BACKENDS = {"kv": "kv", "postgres": "postgres", "prisma": "postgres"}


@dataclass(frozen=True, kw_only=True, slots=True)
class DurableSagaRuntime:
    """What :func:`create_durable_saga_runtime` returns.

    ``runtime`` is not started (``async with runtime: await runtime.run()``); ``dispose()``
    stops it and closes ``store``, but leaves the caller's pool open.
    """

    runtime: Any
    store: SagaStore
    dispose: Callable[[], Awaitable[None]]


KvRuntimeFactory = Callable[[SagaEngine], Awaitable[DurableSagaRuntime]]


async def create_durable_saga_runtime(
        engine: SagaEngine, *, backend: str | None = None, pool: asyncpg.Pool | None = None,
        bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS, kv: KvRuntimeFactory | None = None,
        **options: Any) -> DurableSagaRuntime:
    """The saga runtime on ``backend`` (``kv`` | ``postgres``; ``prisma`` means ``postgres``).

    ``postgres`` applies the ``saga_runtime_*`` migrations to ``pool``; ``options`` go to
    :class:`PostgresSagaRuntime`. Raises :class:`SagaStoreConfigError` for an unknown
    backend, ``postgres`` without a pool, or ``kv`` without its factory.
    """
    chosen = _BACKENDS.get((backend or ("postgres" if pool is not None else "kv")).lower())
    if chosen is None:
        raise SagaStoreConfigError(f"{backend!r} is not a saga store backend; use kv or "
                                   "postgres (prisma is accepted as postgres)")
    if chosen == "kv":
        if kv is None:
            raise SagaStoreConfigError(
                "the kv saga store backend is built by the kv runtime: pass kv=<its factory>, "
                "or choose backend='postgres' with an asyncpg pool")
        return await kv(engine)
    if pool is None:
        raise SagaStoreConfigError(
            "Postgres saga store backend requires an asyncpg pool. Pass "
            "pool=await asyncpg.create_pool(DATABASE_URL).")
    await apply_migrations(pool)
    runtime = PostgresSagaRuntime(engine, pool=pool, bootstrap_servers=bootstrap_servers,
                                  **options)
    store = PostgresSagaStore(pool)
    await store.__aenter__()

    async def dispose() -> None:
        runtime.shutdown()
        await store.close()

    return DurableSagaRuntime(runtime=runtime, store=store, dispose=dispose)
