"""Background jobs: throughput and urgent latency under a backlog, beside arq and Celery.

A measurement, not a test (pytest does not collect it):

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python tests/benchmarks/jobs.py [--jobs 10000] [--backlog 5000] [--urgent 100]
                                              [--concurrency 100] [--systems ours,arq,celery]

Every system gets the same job count and the same concurrency (arq ``max_jobs``, Celery's
thread pool, one NetScript worker pool of that capacity), its workers in separate processes
started before the clock runs, on this machine's Redis (127.0.0.1:6379) for the peers and a
fresh embedded log for ours:

1. **Throughput**: ``--jobs`` no-op jobs triggered as fast as the client goes (arq
   ``enqueue_job``, Celery ``apply_async``, our ``JobClient.trigger_many``), timed from the
   first trigger to the last job's end (each job returns ``time.time()`` when it ends).
2. **Urgent latency under a backlog**: ``--backlog`` normal jobs of 0.2 s each are queued, then
   ``--urgent`` urgent no-ops are triggered 50 ms apart; each latency is its job's end minus its
   trigger time, p50/p99. The peers have one queue (no reserved lane), so urgent jobs wait behind
   the backlog; ours go to the urgent lane, whose share of the pool's capacity is reserved.

Prints each figure, and our ratio to each peer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

REDIS_URL = "redis://127.0.0.1:6379/0"
URGENT_SPACING = 0.05


@dataclass(frozen=True, kw_only=True, slots=True)
class Result:
    system: str
    throughput: float
    urgent_p50_ms: float
    urgent_p99_ms: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextlib.contextmanager
def process(command: list[str], log: Path,
            env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=BENCH,
                                 env={**os.environ, "PYTHONPATH": f"{ROOT}:{BENCH}", **env})
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


async def until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def bench_env(concurrency: int) -> dict[str, str]:
    return {"BENCH_REDIS": REDIS_URL, "BENCH_CONCURRENCY": str(concurrency)}


# -- arq ----------------------------------------------------------------------------------

async def run_arq(args: argparse.Namespace, workdir: Path) -> Result:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.jobs import Job

    redis = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    await redis.flushdb()
    env = bench_env(args.concurrency)
    with process([sys.executable, "-m", "arq", "_peer_jobs.ArqSettings"],
                 workdir / "arq.log", env):
        await until(lambda: redis.exists("arq:queue:health-check"), 60, "the arq worker")
        # 1. throughput
        start = time.time()
        jobs = await asyncio.gather(*(redis.enqueue_job("noop") for _ in range(args.jobs)))
        ends = await asyncio.gather(*(j.result(timeout=600, poll_delay=0.2)  # type: ignore[union-attr]
                                      for j in jobs))
        throughput = args.jobs / (max(ends) - start)
        # 2. urgent latency behind a backlog
        await redis.flushdb()
        await asyncio.gather(*(redis.enqueue_job("slow") for _ in range(args.backlog)))
        urgent: list[tuple[float, Job]] = []
        for _ in range(args.urgent):
            triggered = time.time()
            job = await redis.enqueue_job("urgent")
            assert job is not None
            urgent.append((triggered, job))
            await asyncio.sleep(URGENT_SPACING)
        latencies = [(await j.result(timeout=600, poll_delay=0.2)) - t for t, j in urgent]
    await redis.aclose()
    return Result(system="arq", throughput=throughput,
                  urgent_p50_ms=percentile(latencies, 0.5) * 1000,
                  urgent_p99_ms=percentile(latencies, 0.99) * 1000)


# -- Celery -------------------------------------------------------------------------------

def run_celery(args: argparse.Namespace, workdir: Path) -> Result:
    import redis as redis_lib
    from _peer_jobs import celery_app

    client = redis_lib.Redis.from_url(REDIS_URL)
    client.flushdb()
    env = bench_env(args.concurrency)
    command = [sys.executable, "-m", "celery", "-A", "_peer_jobs:celery_app", "worker",
               "--pool=prefork", f"--concurrency={args.concurrency}", "--loglevel=WARNING",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]
    with process(command, workdir / "celery.log", env):
        deadline = time.monotonic() + 60
        while not celery_app.control.ping(timeout=0.5):
            if time.monotonic() > deadline:
                raise TimeoutError("the Celery worker did not answer")
        start = time.time()
        results = [celery_app.send_task("noop") for _ in range(args.jobs)]
        ends = [r.get(timeout=600, interval=0.05) for r in results]
        throughput = args.jobs / (max(ends) - start)
        for _ in range(args.backlog):
            celery_app.send_task("slow")
        urgent = []
        for _ in range(args.urgent):
            triggered = time.time()
            urgent.append((triggered, celery_app.send_task("urgent")))
            time.sleep(URGENT_SPACING)
        latencies = [r.get(timeout=600, interval=0.05) - t for t, r in urgent]
    client.flushdb()
    return Result(system="celery", throughput=throughput,
                  urgent_p50_ms=percentile(latencies, 0.5) * 1000,
                  urgent_p99_ms=percentile(latencies, 0.99) * 1000)


# -- main ---------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--backlog", type=int, default=5_000)
    parser.add_argument("--urgent", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--systems", default="ours,arq,celery")
    args = parser.parse_args()
    systems = args.systems.split(",")
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="netscript-jobs-bench-") as tmp:
        workdir = Path(tmp)
        for system in systems:
            print(f"running {system} …", flush=True)
            if system == "ours":
                from _ours_jobs import run_ours  # type: ignore[import-not-found]

                results[system] = asyncio.run(run_ours(args, workdir))
            elif system == "arq":
                results[system] = asyncio.run(run_arq(args, workdir))
            elif system == "celery":
                results[system] = run_celery(args, workdir)
            r = results[system]
            print(f"  {system}: {r.throughput:,.0f} jobs/s; urgent p50 {r.urgent_p50_ms:,.0f} ms, "
                  f"p99 {r.urgent_p99_ms:,.0f} ms", flush=True)
    print()
    print(f"{args.jobs:,} no-op jobs, concurrency {args.concurrency}; urgent behind "
          f"{args.backlog:,} queued normal jobs ({args.urgent} samples)")
    print("| system | throughput (jobs/s) | urgent p50 (ms) | urgent p99 (ms) |")
    print("|---|---|---|---|")
    for r in results.values():
        print(f"| {r.system} | {r.throughput:,.0f} | {r.urgent_p50_ms:,.0f} | "
              f"{r.urgent_p99_ms:,.0f} |")
    ours = results.get("ours")
    if ours is not None:
        for peer in (r for r in results.values() if r.system != "ours"):
            print(f"ours / {peer.system}: throughput {ours.throughput / peer.throughput:.2f}x, "
                  f"urgent p99 {peer.urgent_p99_ms / ours.urgent_p99_ms:.1f}x lower")
    print(json.dumps({r.system: r.__dict__ if hasattr(r, "__dict__") else
                      {"throughput": r.throughput, "urgent_p50_ms": r.urgent_p50_ms,
                       "urgent_p99_ms": r.urgent_p99_ms} for r in results.values()}))


if __name__ == "__main__":
    main()
