"""faust-streaming tables on the embedded log survive kill -9 of the worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tests.log._poll import eventually

KEYS = 25
RECORDS = 4000

pytestmark = pytest.mark.slow


class Worker:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self._env = env
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self._log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.log.faust_app"],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).parents[2],
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return self._log_path.read_text()[-4000:]


async def _end_offset(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        tp = TopicPartition(topic, 0)
        if topic not in await consumer.topics():
            return 0
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return max((meta.offset for tp, meta in offsets.items() if tp.topic == topic), default=-1)


async def _run_crash_scenario(bootstrap: str, tmp_path: Path, guarantee: str) -> dict[str, object]:
    app_id = f"app-{guarantee}-{os.getpid()}-{int(time.time() * 1000)}"
    source, sink = f"{app_id}-in", f"{app_id}-out"
    env = {
        **os.environ,
        "FAUST_APP_ID": app_id,
        "FAUST_GUARANTEE": guarantee,
        "FAUST_INPUT": source,
        "FAUST_OUTPUT": sink,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "PYTHONUNBUFFERED": "1",
        "FAUST_DATADIR": str(tmp_path / "faust-data"),
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    for i in range(RECORDS):
        await producer.send(source, json.dumps({"key": f"k{i % KEYS}", "n": i}).encode())
    await producer.flush()

    worker = Worker(env, tmp_path / "worker.log")
    worker.start()
    try:
        # Kill it mid-stream: once some, but not all, input has been committed.
        async def part_done() -> bool:
            return (await _committed(bootstrap, app_id, source)) > RECORDS // 10

        try:
            await eventually(part_done, timeout=90, interval=0.1, what="the worker's progress")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; worker log:\n{worker.log()}") from None
        worker.kill()
        assert await _committed(bootstrap, app_id, source) < RECORDS, "the crash came too late"

        worker.start()
        await producer.send_and_wait(source, json.dumps({"dump": 1}).encode())
        consumer = AIOKafkaConsumer(
            sink,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        dumps: list[dict[str, object]] = []

        async def dumped() -> bool:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                dumps.extend(json.loads(r.value) for r in records)
            return any(d.get("dump") == 1 for d in dumps)

        try:
            await eventually(dumped, timeout=120, what="the table dump")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; worker log:\n{worker.log()}") from None
        finally:
            await consumer.stop()
        return next(d for d in dumps if d.get("dump") == 1)
    finally:
        worker.kill()
        await producer.stop()


def _expected() -> tuple[dict[str, int], dict[str, int]]:
    latest: dict[str, int] = {}
    counts: Counter[str] = Counter()
    for i in range(RECORDS):
        latest[f"k{i % KEYS}"] = i
        counts[f"k{i % KEYS}"] += 1
    return latest, dict(counts)


async def test_at_least_once_latest_value_table_survives_kill(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """After kill -9 and restart, the latest-value table equals the crash-free result."""
    dump = await _run_crash_scenario(kafka_bootstrap, tmp_path, "at_least_once")
    latest, counts = _expected()
    assert dump["latest"] == latest
    # At-least-once may apply a record twice after the crash, never zero times.
    assert all(dump["counts"][k] >= n for k, n in counts.items())  # type: ignore[index]


async def test_exactly_once_counting_table_survives_kill(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """With exactly-once, counts after kill -9 and restart equal the crash-free counts."""
    dump = await _run_crash_scenario(kafka_bootstrap, tmp_path, "exactly_once")
    latest, counts = _expected()
    assert dump["counts"] == counts
    assert dump["latest"] == latest
