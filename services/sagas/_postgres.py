"""The ``postgres`` saga store backend in one place, and ``netscript sagas run --store postgres``.

The pieces live in small modules: the tables (``migrations/`` and :mod:`._migrations`), the
reads (:mod:`._postgres_store`), the writes (:mod:`._postgres_writes`), the runtime
(:mod:`._postgres_runner`) and the outbox relay (:mod:`._outbox`).
"""

from __future__ import annotations

import asyncio
import signal

import asyncpg

from services.kernel import Settings
from services.sagas._engine import SagaEngine
from services.sagas._errors import SagaRuntimeError, SagaStoreConfigError
from services.sagas._migrations import apply_migrations, saga_migrations
from services.sagas._outbox import POSTGRES_ERRORS, OutboxRelay
from services.sagas._postgres_runner import PostgresSagaRuntime, run_postgres_runtime
from services.sagas._postgres_store import PostgresSagaStore
from services.sagas._topics import DEFAULT_PARTITIONS


def run_postgres_cli(engine: SagaEngine, settings: Settings, *,
                     partitions: int = DEFAULT_PARTITIONS, health_port: int | None = None,
                     health_host: str = "127.0.0.1") -> None:
    """Run the ``postgres`` runtime in this process until SIGTERM or SIGINT.

    Raises :class:`SagaStoreConfigError` without ``DATABASE_URL`` and
    :class:`SagaRuntimeError` when Postgres or the log fails.
    """
    if not settings.database_url:
        raise SagaStoreConfigError(
            "the postgres saga store needs DATABASE_URL (requires_db in the topology sets it); "
            "or choose NETSCRIPT_SAGA_STORE=kv")
    asyncio.run(_run(engine, settings.database_url, settings.kafka_bootstrap_servers,
                     partitions, health_port, health_host))


async def _run(engine: SagaEngine, database_url: str, bootstrap_servers: str,
               partitions: int, health_port: int | None, health_host: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for received in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(received, stop.set)
    try:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    except POSTGRES_ERRORS as exc:
        raise SagaRuntimeError(f"cannot connect to the saga store database: {exc}; start "
                               "Postgres or fix DATABASE_URL") from exc
    async with pool, asyncio.TaskGroup() as group:
        health = None
        if health_port is not None:
            from services.kernel._health import serve_health

            health = group.create_task(serve_health("sagas-runtime", host=health_host,
                                                    port=health_port))
        try:
            await run_postgres_runtime(engine, pool=pool, bootstrap_servers=bootstrap_servers,
                                       stop=stop, partitions=partitions)
        finally:
            if health is not None:
                health.cancel()


__all__ = [
    "OutboxRelay",
    "PostgresSagaRuntime",
    "PostgresSagaStore",
    "SagaRuntimeError",
    "apply_migrations",
    "run_postgres_cli",
    "run_postgres_runtime",
    "saga_migrations",
]
