"""The workers' processes as real child processes a test can ``kill -9``, ``SIGSTOP`` and
restart, and readers of the workers' topics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from services.workers._records import JobRequest
from services.workers._topics import EXECUTIONS_CHANGELOG, LANE_TOPICS
from tests.log._topics import read_topic

ROOT = Path(__file__).parents[2]


class Process:
    """A Python command line (``-m topology.cli ...``) as a child process (output in
    ``<workdir>/<name>.log``)."""

    def __init__(self, name: str, args: Sequence[str], bootstrap: str, workdir: Path, *,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.args = list(args)
        self.bootstrap = bootstrap
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"

    def start(self) -> Process:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, *self.args], stdout=out,
                stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                     "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **self.env})
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def pause(self) -> None:
        """``SIGSTOP``: the process stops where it is, sockets and all."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def __enter__(self) -> Process:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dispatcher(bootstrap: str, workdir: Path, **env: str) -> Process:
    """``netscript workers dispatch``."""
    return Process("dispatcher", ["-m", "topology.cli", "workers", "dispatch", "--data-dir",
                                  str(workdir / "data")], bootstrap, workdir, env=env)


def pools(bootstrap: str, workdir: Path, name: str = "pools", *, jobs: str, count: int = 1,
          capacity: int = 4, urgent_percentage: int = 25, heartbeat: float = 0.5,
          **env: str) -> Process:
    """``netscript workers run`` with the given pool settings."""
    return Process(name, ["-m", "topology.cli", "workers", "run", "--jobs", jobs], bootstrap,
                   workdir, env={
        "WORKER_POOLS_COUNT": str(count), "WORKER_POOL_CAPACITY": str(capacity),
        "WORKER_POOL_URGENT_PERCENTAGE": str(urgent_percentage),
        "WORKER_HEARTBEAT_SECONDS": str(heartbeat), **env})


async def append(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]],
                 *, partition: int | None = None) -> None:
    """Append raw records (key, value) and wait for the log's acknowledgement."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def request_jobs(bootstrap: str, requests: Sequence[JobRequest]) -> None:
    """Trigger: append the requests to their lanes, as the API does."""
    by_lane: dict[str, list[tuple[bytes | None, bytes]]] = {}
    for request in requests:
        by_lane.setdefault(LANE_TOPICS[request.lane], []).append(
            (request.execution_id.encode(), json.dumps(request.to_json()).encode()))
    for topic, records in by_lane.items():
        await append(bootstrap, topic, records)


async def executions(bootstrap: str) -> dict[str, dict[str, Any]]:
    """Every execution as the changelog says now: id → Execution JSON."""
    latest: dict[str, dict[str, Any]] = {}
    for record in await read_topic(bootstrap, EXECUTIONS_CHANGELOG):
        key = json.loads(record.key)
        if record.value is None:
            latest.pop(key, None)
        else:
            latest[key] = json.loads(record.value)
    return latest
