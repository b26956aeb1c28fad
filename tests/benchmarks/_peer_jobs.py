"""The jobs the job-queue benchmark runs, for each system: a no-op, a normal job that takes
``NORMAL_SECONDS``, and an urgent no-op. Each returns ``time.time()`` at its end, so a trigger's
latency is read from the result (same machine clock) rather than from a polling client.

- arq: ``arq _peer_jobs.ArqSettings`` (functions ``noop``, ``slow``, ``urgent``);
- Celery: ``celery -A _peer_jobs worker`` (tasks ``noop``, ``slow``, ``urgent``);
- ours: ``JOBS`` (``bench-noop``, ``bench-slow`` on the normal lane, ``bench-urgent``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, ClassVar

from arq.connections import RedisSettings
from celery import Celery

NORMAL_SECONDS = float(os.environ.get("BENCH_NORMAL_SECONDS", "0.2"))
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "100"))


# -- arq ----------------------------------------------------------------------------------

async def noop(ctx: dict[str, Any]) -> float:
    return time.time()


async def slow(ctx: dict[str, Any]) -> float:
    await asyncio.sleep(NORMAL_SECONDS)
    return time.time()


async def urgent(ctx: dict[str, Any]) -> float:
    return time.time()


class ArqSettings:
    functions: ClassVar[list[Any]] = [noop, slow, urgent]
    redis_settings = RedisSettings.from_dsn(REDIS)
    max_jobs = CONCURRENCY
    poll_delay = 0.01  # arq's default 0.5 s would dominate its latency
    keep_result = 3600
    health_check_interval = 1


# -- Celery -------------------------------------------------------------------------------

celery_app = Celery("bench", broker=REDIS, backend=REDIS)
celery_app.conf.update(worker_prefetch_multiplier=1, task_acks_late=False,
                       result_expires=3600, broker_connection_retry_on_startup=True)


@celery_app.task(name="noop")
def celery_noop() -> float:
    return time.time()


@celery_app.task(name="slow")
def celery_slow() -> float:
    time.sleep(NORMAL_SECONDS)
    return time.time()


@celery_app.task(name="urgent")
def celery_urgent() -> float:
    return time.time()


# -- ours ---------------------------------------------------------------------------------

def _ours() -> tuple[Any, ...]:
    from services.workers import create_success_result, define_job

    async def bench_noop(ctx: Any) -> Any:
        return create_success_result({"done_at": time.time()})

    async def bench_slow(ctx: Any) -> Any:
        await asyncio.sleep(NORMAL_SECONDS)
        return create_success_result({"done_at": time.time()})

    async def bench_urgent(ctx: Any) -> Any:
        return create_success_result({"done_at": time.time()})

    return (define_job("bench-noop", bench_noop),
            define_job("bench-slow", bench_slow, timeout=60),
            define_job("bench-urgent", bench_urgent, lane="urgent"))


JOBS = _ours()
