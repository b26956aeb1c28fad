"""The broker's data survives kill -9: acknowledged records, topics, offsets, transactions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError as ClientError

from services.log.testing import BrokerProcess
from tests.log._poll import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker in its own process, killed at the end of the test whatever happens."""
    with BrokerProcess(tmp_path / "data") as process:
        yield process


async def _read(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        seen: list[tuple[int, bytes]] = []
        while not seen or seen[-1][0] < end - 1:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                seen.extend((r.offset, r.value) for r in records)
        return seen
    finally:
        await consumer.stop()


async def test_acknowledged_records_survive_broker_kill_during_produce(
    broker: BrokerProcess,
) -> None:
    """kill -9 mid-run (acks=all): every acked record is there, offsets contiguous, no dups."""
    topic = "durable"
    acked: list[bytes] = []
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=5000,
        retry_backoff_ms=100,
        linger_ms=2,
    )
    await producer.start()

    async def produce_forever() -> None:
        i = 0
        while True:
            value = f"r{i}".encode()
            try:
                await producer.send_and_wait(topic, value)
            except ClientError:
                continue  # not acknowledged: may or may not be stored, and is resent
            acked.append(value)
            i += 1

    runner = asyncio.create_task(produce_forever())
    try:
        await eventually(lambda: len(acked) >= 300, what="300 acknowledged records")
        broker.kill()
        at_kill = list(acked)
        broker.start()
        await eventually(
            lambda: len(acked) >= len(at_kill) + 100, what="records acknowledged after restart"
        )
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await producer.stop()
    stored = await _read(broker.bootstrap_servers, topic)
    broker.kill()
    offsets = [offset for offset, _ in stored]
    values = [value for _, value in stored]
    assert offsets == list(range(len(stored))), "offsets are not contiguous"
    assert len(set(values)) == len(values), "the idempotent producer's records were duplicated"
    assert set(acked) <= set(values), "an acknowledged record was lost"


async def test_topics_configs_and_offsets_survive_kill(broker: BrokerProcess) -> None:
    """Topics, their configs and committed offsets are back after kill -9 and restart."""
    bootstrap = broker.bootstrap_servers
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("kept", 3, 1, topic_configs={"cleanup.policy": "compact"})])
    await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="g1")
    await consumer.start()
    consumer.assign([TopicPartition("kept", 2)])
    await consumer.commit({TopicPartition("kept", 2): 42})
    await consumer.stop()
    broker.kill()
    broker.start()
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            described = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, "kept")]
            )
            entries = {e[0]: e[1] for e in described[0].resources[0][4]}
            assert entries["cleanup.policy"] == "compact"
            offsets = await admin.list_consumer_group_offsets("g1")
            assert offsets[TopicPartition("kept", 2)].offset == 42
            metadata = await admin.describe_topics(["kept"])
            assert len(metadata[0]["partitions"]) == 3
        finally:
            await admin.close()
    finally:
        broker.kill()


async def test_torn_tail_is_truncated_not_served(broker: BrokerProcess, tmp_path: Path) -> None:
    """Garbage appended to a segment (a torn write) is cut off on restart; data before stays."""
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    for i in range(10):
        await producer.send_and_wait("torn", f"v{i}".encode())
    await producer.stop()
    broker.kill()
    segment = next((tmp_path / "data" / "topics" / "torn-0").glob("*.log"))
    with open(segment, "ab") as out:
        out.write(b"\x00\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x01\x00garbage-tail")
    broker.start()
    try:
        stored = await _read(broker.bootstrap_servers, "torn")
        assert stored == [(i, f"v{i}".encode()) for i in range(10)]
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        await producer.start()
        metadata = await producer.send_and_wait("torn", b"after")
        await producer.stop()
        assert metadata.offset == 10
    finally:
        broker.kill()
