"""What the saga tests share: a private log, the runtime as a real process, topic readers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from services.sagas import SagaEngine, SagaMessage
from services.sagas._postgres_runner import PostgresSagaRuntime
from services.sagas._records import bus_value, instance_key
from tests.log._topics import read_topic

ROOT = Path(__file__).parents[2]
POSTGRES = os.environ.get("NETSCRIPT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
"""The real Postgres the saga tests use (each test gets a fresh schema on it)."""


class RuntimeProcess:
    """``netscript sagas run`` as a child process that a test can ``kill -9`` and restart."""

    def __init__(self, bootstrap: str, workdir: Path, *, store: str = "kv", partitions: int = 2,
                 sagas: str | None = None, env: Mapping[str, str] | None = None) -> None:
        self.bootstrap = bootstrap
        self.workdir = workdir
        self.store = store
        self.partitions = partitions
        self.sagas = sagas
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "runtime.log"
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> RuntimeProcess:
        command = [sys.executable, "-m", "topology.cli", "sagas", "run", "--store", self.store,
                   "--partitions", str(self.partitions), "--data-dir",
                   str(self.workdir / "data")]
        if self.sagas:
            command += ["--sagas", self.sagas]
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                     "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **self.env})
        return self

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def __enter__(self) -> RuntimeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def publish(bootstrap: str, saga_id: str, messages: list[SagaMessage],
                  correlation_key: str | None = None) -> None:
    """Put messages on the bus the way the sagas API does (keyed by instance key)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        for message in messages:
            key = correlation_key or message.correlation_key
            assert key is not None
            await producer.send_and_wait(
                "sagas.bus", key=instance_key(saga_id, key).encode(),
                value=json.dumps(bus_value(saga_id, message)).encode())
    finally:
        await producer.stop()


async def latest_instances(bootstrap: str) -> dict[str, dict[str, Any]]:
    """The ``kv`` store as its changelog says now: instance key → instance JSON."""
    latest: dict[str, dict[str, Any]] = {}
    for record in await read_topic(bootstrap, "netscript-sagas-instances-changelog"):
        key = json.loads(record.key)
        if record.value is None:
            latest.pop(key, None)
        else:
            latest[key] = json.loads(record.value)
    return latest


@contextlib.asynccontextmanager
async def running(engine: SagaEngine, pool: asyncpg.Pool, log: str, *, partitions: int = 2,
                  **options: Any) -> AsyncIterator[PostgresSagaRuntime]:
    """The runtime running in this event loop until the block ends."""
    options.setdefault("group_id", None)
    async with PostgresSagaRuntime(engine, pool=pool, bootstrap_servers=log,
                                   partitions=partitions, **options) as runtime, \
            asyncio.TaskGroup() as group:
        group.create_task(runtime.run())
        try:
            yield runtime
        finally:
            runtime.shutdown()
