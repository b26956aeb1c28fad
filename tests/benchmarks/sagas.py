"""Saga runtime throughput and latency, beside the log's raw consume→produce loop.

A measurement, not a test (pytest does not collect it):

    .venv/bin/python tests/benchmarks/sagas.py [--messages 100000] [--instances 10000]

On one fresh embedded log (4 partitions everywhere):

1. **Raw loop** (the peer): an aiokafka exactly-once consume→transform→produce loop — a
   read_committed consumer and a transactional producer, one transaction per fetched batch with
   the consumed offsets — copying ``--messages`` records of the same size as the bus messages.
2. **Sagas**: ``--messages`` ``Count`` messages over ``--instances`` counter-saga instances are
   put on the bus first; then ``netscript sagas run`` (kv store, faust exactly-once) starts, and
   transitions/s is timed from its first committed offset to its last (startup excluded).
3. **Latency**: with the runtime warm, the sagas API (in this process) gets ``--samples``
   sequential publishes; each is timed until ``GET /instances/...?after=<position>`` shows the
   instance (publish → state visible over HTTP), p50/p99.

Prints our figure, the peer's, and the ratio (goal: sagas ≥ 0.3x the raw loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.kernel import Settings, TopicConfig, ensure_topics  # noqa: E402
from services.kernel.testing import serve_app  # noqa: E402
from services.log.testing import BrokerProcess  # noqa: E402
from services.sagas._engine import SagaEngine  # noqa: E402
from services.sagas._topics import BUS, PROCESSOR_ID, topic_configs  # noqa: E402
from services.sagas._views import KvSagaStore, TransitionFeed  # noqa: E402
from services.sagas.api import create_sagas_app  # noqa: E402
from tests.sagas.sagas_for_tests import ALL, SPEC  # noqa: E402

PARTITIONS = 4
GOAL_RATIO = 0.3


def bus_record(instance: int, of: int) -> tuple[bytes, bytes]:
    key = f"counter-saga/c{instance}"
    value = {"saga": "counter-saga",
             "message": {"type": "Count", "payload": {"id": f"c{instance}", "of": of},
                         "correlation_key": f"c{instance}"}}
    return key.encode(), json.dumps(value).encode()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        for start in range(0, len(records), 5000):
            futures = [await producer.send(topic, value=v, key=k)
                       for k, v in records[start:start + 5000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_loop(bootstrap: str, records: list[tuple[bytes, bytes]]) -> float:
    """records/s of an exactly-once consume→produce loop over ``records``."""
    await ensure_topics(bootstrap, [TopicConfig(name="raw.in", partitions=PARTITIONS),
                                    TopicConfig(name="raw.out", partitions=PARTITIONS)])
    await produce(bootstrap, "raw.in", records)
    consumer = AIOKafkaConsumer("raw.in", bootstrap_servers=bootstrap, group_id="raw-loop",
                                isolation_level="read_committed", enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=2000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="raw-loop",
                                linger_ms=5, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    done = 0
    started: float | None = None
    try:
        while done < len(records):
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if not batches:
                continue
            if started is None:
                started = time.perf_counter()
            async with producer.transaction():
                futures = []
                offsets = {}
                for tp, batch in batches.items():
                    for record in batch:
                        # The transform: decode, change, encode — what a processor minimally does.
                        value = json.loads(record.value)
                        value["seen"] = True
                        futures.append(await producer.send(
                            "raw.out", key=record.key, value=json.dumps(value).encode()))
                    offsets[tp] = batch[-1].offset + 1
                    done += len(batch)
                await asyncio.gather(*futures)
                await producer.send_offsets_to_transaction(offsets, "raw-loop")
        assert started is not None
        return done / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


async def committed(bootstrap: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(PROCESSOR_ID)
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == BUS and meta.offset > 0)


async def sagas_throughput(bootstrap: str, workdir: Path, messages: int, instances: int
                           ) -> tuple[float, subprocess.Popen[bytes]]:
    """transitions/s of the kv runtime over a pre-filled bus; returns the still-running
    runtime for the latency phase."""
    per_instance = messages // instances
    records = [bus_record(i, per_instance) for _ in range(per_instance) for i in range(instances)]
    await produce(bootstrap, BUS, records)
    log_file = open(workdir / "runtime.log", "wb")  # noqa: SIM115 - lives as long as the child
    runtime = subprocess.Popen(
        [sys.executable, "-m", "topology.cli", "sagas", "run", "--store", "kv", "--partitions",
         str(PARTITIONS), "--sagas", SPEC, "--data-dir", str(workdir / "runtime")],
        cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONPATH": str(ROOT)})
    first_at = first_count = None
    deadline = time.monotonic() + 1800
    while True:
        count = await committed(bootstrap)
        now = time.perf_counter()
        if count > 0 and first_at is None:
            first_at, first_count = now, count
        if count >= len(records):
            break
        if runtime.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the runtime stopped or stalled at {count}; see "
                             f"{workdir / 'runtime.log'}")
        await asyncio.sleep(0.1)
    assert first_at is not None
    assert first_count is not None
    return (len(records) - first_count) / (now - first_at), runtime


async def latency(bootstrap: str, samples: int) -> list[float]:
    feed = TransitionFeed(bootstrap)
    app = create_sagas_app(Settings(service_name="sagas-bench", kafka_bootstrap_servers=bootstrap),
                           SagaEngine(ALL), KvSagaStore(bootstrap, feed), feed=feed,
                           partitions=PARTITIONS, mirror=False)
    out = []
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url,
                                                           timeout=30) as client:
        for i in range(samples + 10):
            started = time.perf_counter()
            receipt = (await client.post("/api/v1/sagas/publish", json={
                "type": "UserSettingsCreated", "payload": {"userId": f"lat-{i}"}})).json()
            found = await client.get(f"/api/v1/sagas/instances/user-settings-saga/lat-{i}",
                                     params={"after": receipt["position"]})
            assert found.status_code == 200, found.text
            if i >= 10:  # the first few warm the connection and the views
                out.append(time.perf_counter() - started)
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with BrokerProcess(workdir / "log") as broker:
            bootstrap = broker.bootstrap_servers
            await ensure_topics(bootstrap, topic_configs(PARTITIONS))
            raw_records = [bus_record(i % args.instances, 10) for i in range(args.messages)]
            raw = await raw_loop(bootstrap, raw_records)
            print(f"raw EOS consume→produce loop: {raw:,.0f} records/s", flush=True)
            ours, runtime = await sagas_throughput(bootstrap, workdir, args.messages,
                                                   args.instances)
            try:
                print(f"sagas runtime (kv, exactly-once): {ours:,.0f} transitions/s", flush=True)
                lat = await latency(bootstrap, args.samples)
            finally:
                runtime.terminate()
                runtime.wait(30)
    ratio = ours / raw
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print(f"\nthroughput: ours {ours:,.0f} transitions/s, raw loop {raw:,.0f} records/s, "
          f"ratio {ratio:.2f}x (goal >= {GOAL_RATIO}x: {verdict})")
    print(f"publish->visible over HTTP ({len(lat)} sequential): "
          f"p50 {percentile(lat, 50) * 1000:.1f} ms, p99 {percentile(lat, 99) * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
