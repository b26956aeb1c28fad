"""NetScript's side of tests/benchmarks/jobs.py: a fresh embedded log, the dispatcher and one
worker pool of ``--concurrency`` credits (20 % reserved for urgent work) as real processes."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.kernel import Settings, ensure_topics
from services.log.testing import BrokerProcess
from services.workers._topics import EXECUTIONS_CHANGELOG, topic_configs
from services.workers._trigger import JobClient

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "topology.cli", *args], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": f"{ROOT}:{BENCH}", **env})


class Results:
    """``done_at`` of every succeeded execution, read from the executions changelog."""

    def __init__(self, bootstrap: str) -> None:
        self.done: dict[str, float] = {}
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap,
                                          isolation_level="read_committed",
                                          enable_auto_commit=False, group_id=None)

    async def __aenter__(self) -> Results:
        await self._consumer.start()
        tp = TopicPartition(EXECUTIONS_CHANGELOG, 0)
        self._consumer.assign([tp])
        await self._consumer.seek_to_beginning(tp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def wait(self, ids: list[str], timeout: float = 600) -> list[float]:
        deadline = time.monotonic() + timeout
        wanted = set(ids)
        while not wanted <= self.done.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(wanted - self.done.keys())} jobs not done")
            batch = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batch.values():
                for record in records:
                    value: dict[str, Any] = json.loads(record.value)
                    if value["status"] == "succeeded":
                        self.done[value["execution_id"]] = value["result"]["done_at"]
        return [self.done[i] for i in ids]


async def run_ours(args: argparse.Namespace, workdir: Path) -> Any:
    from _peer_jobs import JOBS
    from jobs import Result, percentile  # type: ignore[import-not-found]

    with BrokerProcess(workdir / "log") as broker:
        log = broker.bootstrap_servers
        await ensure_topics(log, topic_configs())
        env = {"KAFKA_BOOTSTRAP_SERVERS": log, "BENCH_CONCURRENCY": str(args.concurrency)}
        dispatcher = _start(["workers", "dispatch", "--data-dir", str(workdir / "d")],
                            workdir / "dispatcher.log", env)
        pools = _start(["workers", "run", "--jobs", "_peer_jobs:JOBS"], workdir / "pools.log",
                       {**env, "WORKER_POOLS_COUNT": "1",
                        "WORKER_POOL_CAPACITY": str(args.concurrency),
                        "WORKER_POOL_URGENT_PERCENTAGE": "20",
                        "WORKER_HEARTBEAT_SECONDS": "1"})
        try:
            settings = Settings(service_name="bench", kafka_bootstrap_servers=log)
            async with JobClient(JOBS, settings) as client, Results(log) as results:
                # Warm up: the dispatcher and the pool are up once a job went through.
                warm = await client.trigger("bench-noop", {})
                await results.wait([warm.execution_id], timeout=120)
                # 1. throughput
                start = time.time()
                receipts = await client.trigger_many([("bench-noop", {})] * args.jobs)
                ends = await results.wait([r.execution_id for r in receipts])
                throughput = args.jobs / (max(ends) - start)
                # 2. urgent latency behind a backlog
                await client.trigger_many([("bench-slow", {})] * args.backlog)
                urgent: list[tuple[float, str]] = []
                for _ in range(args.urgent):
                    triggered = time.time()
                    receipt = await client.trigger("bench-urgent", {})
                    urgent.append((triggered, receipt.execution_id))
                    await asyncio.sleep(0.05)
                done = await results.wait([e for _, e in urgent])
                latencies = [d - t for (t, _), d in zip(urgent, done, strict=True)]
        finally:
            for child in (pools, dispatcher):
                child.terminate()
                child.wait(timeout=60)
    return Result(system="ours", throughput=throughput,
                  urgent_p50_ms=percentile(latencies, 0.5) * 1000,
                  urgent_p99_ms=percentile(latencies, 0.99) * 1000)
