"""Jobs the workers tests run in real pool processes (``--jobs ...jobs_for_tests:ALL``)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from services.workers import (
    JobContext,
    JobResult,
    RetryPolicy,
    create_success_result,
    define_job,
)


class Sleep(BaseModel):
    seconds: float = Field(ge=0)


async def sleepy(ctx: JobContext[Sleep]) -> JobResult:
    """Sleep in steps of 0.1 s, heartbeating the elapsed steps as progress."""
    steps = max(1, round(ctx.payload.seconds / 0.1))
    for step in range(steps):
        await asyncio.sleep(ctx.payload.seconds / steps)
        await ctx.heartbeat(progress=step + 1)
    return create_success_result({"pool": ctx.lease.pool, "token": ctx.lease.token})


async def napping(ctx: JobContext[Sleep]) -> JobResult:
    """One long sleep, no check-ins of its own (the pool heartbeats for it): paused and
    resumed past its end, it returns at once — before the pool reads its revocation."""
    await asyncio.sleep(ctx.payload.seconds)
    return create_success_result({"pool": ctx.lease.pool, "token": ctx.lease.token})


async def quick(ctx: JobContext[Any]) -> JobResult:
    return create_success_result({"pool": ctx.lease.pool, "lane": ctx.lane})


async def broken(ctx: JobContext[Any]) -> JobResult:
    raise RuntimeError(f"attempt {ctx.attempt} broke")


sleepy_job = define_job("sleepy", sleepy, payload=Sleep, retry=RetryPolicy(backoff=0.1))
napping_job = define_job("napping", napping, payload=Sleep, retry=RetryPolicy(backoff=0.1))
quick_job = define_job("quick", quick)
urgent_job = define_job("quick-urgent", quick, lane="urgent")
broken_job = define_job("broken", broken, retry=RetryPolicy(max_attempts=2, backoff=0.1))

ALL = (sleepy_job, napping_job, quick_job, urgent_job, broken_job)
SPEC = "tests.workers.jobs_for_tests:ALL"
