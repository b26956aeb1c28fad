"""The dispatcher as a real process: exactly-once leases across ``kill -9``, fencing, dead
letters, poison records, cancellation. The test plays the pools (``ScriptedPool``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from services.workers import RetryPolicy
from services.workers._records import Command, JobRequest
from services.workers._topics import ASSIGNMENTS, COMMANDS, DEAD_LETTER, NORMAL
from tests.log._poll import eventually
from tests.workers._processes import (
    append,
    dispatcher,
    executions,
    read_topic,
    request_jobs,
)
from tests.workers._scripted_pool import ScriptedPool


def job(n: int, *, attempts: int = 3, backoff: float = 0.1, lane: str = "normal") -> JobRequest:
    return JobRequest(execution_id=f"x{n:05d}", job_id="noop", lane=lane,  # type: ignore[arg-type]
                      payload={"n": n},
                      retry=RetryPolicy(max_attempts=attempts, backoff=backoff))


async def test_kill_9_of_the_dispatcher_leases_every_job_exactly_once(
        workers_log: str, tmp_path: Path) -> None:
    """Three ``kill -9`` of the dispatcher mid-stream: every job succeeds once, each on its
    first lease — no assignment an aborted transaction made ever reaches a pool."""
    total = 300
    proc = dispatcher(workers_log, tmp_path).start()
    try:
        pool = ScriptedPool(workers_log, "scripted-eos", capacity=8, urgent=0)
        async with pool.running():
            stop = asyncio.Event()
            worker = asyncio.create_task(pool.work(stop))
            await request_jobs(workers_log, [job(n) for n in range(total)])
            for fraction in (0.2, 0.45, 0.7):
                await eventually(lambda f=fraction: len(pool.leases()) >= total * f,  # type: ignore[misc]
                                 timeout=90, what=lambda: f"{fraction:.0%} leased\n{proc.log()}")
                proc.kill()
                proc.start()

            async def all_done() -> bool:
                found = await executions(workers_log)
                return sum(e["status"] == "succeeded" for e in found.values()) == total

            await eventually(all_done, timeout=120, interval=0.5,
                             what=lambda: f"every job succeeded\n{proc.log()}")
            stop.set()
            await worker
        found = await executions(workers_log)
        mine = {k: v for k, v in found.items() if k.startswith("x")}
        assert len(mine) == total
        assert {(e["attempt"], e["token"], e["rejected_results"]) for e in mine.values()} == {
            (1, 1, 0)}
        leases = [json.loads(r.value) for r in await read_topic(workers_log, ASSIGNMENTS)]
        granted = [x["execution_id"] for x in leases
                   if x["type"] == "lease" and x["pool"] == pool.pool_id]
        assert sorted(granted) == sorted(mine)  # one committed lease per execution
    finally:
        proc.stop()
