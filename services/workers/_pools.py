"""``netscript workers run``: a process hosting ``WORKER_POOLS_COUNT`` worker pools.

The pools share one producer (acks=all, idempotent), one saga publisher (created on first use,
for ``ctx.sagas``) and the publisher of ``ctx.publish``. SIGTERM or SIGINT stops them
gracefully: no new leases, running attempts finish within the grace period, then ``bye``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from services.kernel import Published, Settings, create_producer, ensure_topics
from services.kernel._tracing import inject_trace_headers, publish_span
from services.workers._jobs import JobDefinition
from services.workers._pool import WorkerPool
from services.workers._pool_settings import PoolSettings
from services.workers._topics import topic_configs

if TYPE_CHECKING:
    from services.sagas import SagaPublisher

log = logging.getLogger("netscript.workers.pools")


def pool_ids(count: int) -> list[str]:
    """``<host>-<pid>-<index>``: a restarted process is a new pool."""
    return [f"{socket.gethostname()}-{os.getpid()}-{i}" for i in range(count)]


@contextlib.asynccontextmanager
async def serve_pools(settings: PoolSettings, jobs: Sequence[JobDefinition[Any]], *,
                      bootstrap_servers: str) -> AsyncIterator[list[WorkerPool]]:
    """The pools running (announced) until the block ends, then stopped gracefully."""
    await ensure_topics(bootstrap_servers, topic_configs())
    producer = create_producer(Settings(service_name="workers-pools",
                                        kafka_bootstrap_servers=bootstrap_servers),
                               linger_ms=1)
    await producer.start()
    sagas: list[SagaPublisher] = []

    def saga_publisher() -> SagaPublisher:
        if not sagas:
            from services.sagas import create_saga_publisher

            sagas.append(create_saga_publisher())
        return sagas[0]

    async def publish(topic: str, value: bytes, key: bytes | None) -> Published:
        with publish_span(topic, key=key):
            meta = await producer.send_and_wait(topic, value, key=key,
                                                headers=inject_trace_headers())
        return Published(topic=meta.topic, partition=meta.partition, offset=meta.offset)

    registry = {job.id: job for job in jobs}
    try:
        async with contextlib.AsyncExitStack() as stack:
            pools = [await stack.enter_async_context(WorkerPool(
                pool_id=pool_id, settings=settings, jobs=registry, producer=producer,
                bootstrap_servers=bootstrap_servers, sagas=saga_publisher, events=publish))
                for pool_id in pool_ids(settings.pools_count)]
            yield pools
    finally:
        for publisher in sagas:
            await publisher.aclose()
        await producer.stop()


def run_pools(settings: PoolSettings, jobs: Sequence[JobDefinition[Any]], *,
              bootstrap_servers: str, health_port: int | None = None,
              health_host: str = "127.0.0.1") -> None:
    """Run the pools in this process until SIGTERM or SIGINT (blocking)."""
    asyncio.run(_run(settings, jobs, bootstrap_servers, health_port, health_host))


async def _run(settings: PoolSettings, jobs: Sequence[JobDefinition[Any]],
               bootstrap_servers: str, health_port: int | None, health_host: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for received in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(received, stop.set)
    async with serve_pools(settings, jobs, bootstrap_servers=bootstrap_servers) as pools, \
            asyncio.TaskGroup() as group:
        log.info("worker pools %s ready (capacity %d, %d reserved for urgent work)",
                 ", ".join(p.pool_id for p in pools), settings.capacity,
                 settings.urgent_reserved)
        health = None
        if health_port is not None:
            from services.kernel._health import serve_health

            # Started once every pool announced itself: answering means ready.
            health = group.create_task(serve_health("workers-pools", host=health_host,
                                                    port=health_port))
        await stop.wait()
        if health is not None:
            health.cancel()
