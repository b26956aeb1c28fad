"""Fetch, ListOffsets and Metadata semantics, seen through real clients' requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.metadata import MetadataRequest
from confluent_kafka.admin import AdminClient, NewTopic

from services.log import Broker

ONE_MB = 1024 * 1024


@pytest.fixture
async def client(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaClient]:
    """A low-level aiokafka client, to send hand-made requests to the shared broker."""
    low_level = AIOKafkaClient(bootstrap_servers=kafka_bootstrap)
    await low_level.bootstrap()
    try:
        yield low_level
    finally:
        await low_level.close()


async def _produce(bootstrap: str, topic: str, values: list[bytes], **kwargs: object) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kwargs)  # type: ignore[arg-type]
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _fetch(
    client: AIOKafkaClient,
    topic: str,
    offset: int,
    *,
    max_wait_ms: int,
    min_bytes: int = 1,
    partition_max_bytes: int = ONE_MB,
    max_bytes: int = 50 * ONE_MB,
) -> tuple[int, int, bytes]:
    """One Fetch request; returns (error code, high watermark, record bytes)."""
    request = FetchRequest(
        max_wait_ms, min_bytes, max_bytes, 0, [(topic, [(0, offset, partition_max_bytes)])]
    )
    response = await client.send(client.get_random_node(), request)
    partition = response.topics[0][1][0]
    return partition[1], partition[2], partition[-1]


async def test_fetch_long_poll_wakes_when_data_arrives(
    kafka_bootstrap: str, topic: str, client: AIOKafkaClient
) -> None:
    """A fetch waiting on an empty partition is answered as soon as a record is appended."""
    await _produce(kafka_bootstrap, topic, [b"first"])
    waiting = asyncio.ensure_future(_fetch(client, topic, 1, max_wait_ms=60_000))
    await asyncio.sleep(0)  # the request is on the wire before the record is produced
    await _produce(kafka_bootstrap, topic, [b"second"])
    error, high_watermark, records = await asyncio.wait_for(waiting, 20)
    assert error == 0
    assert high_watermark == 2
    assert b"second" in records


async def test_fetch_below_min_bytes_returns_what_it_has_after_max_wait(
    kafka_bootstrap: str, topic: str, client: AIOKafkaClient
) -> None:
    """min_bytes not reached: the broker answers at max_wait with the data it has."""
    await _produce(kafka_bootstrap, topic, [b"only"])
    error, _, records = await _fetch(client, topic, 0, max_wait_ms=300, min_bytes=10 * ONE_MB)
    assert error == 0
    assert b"only" in records


async def test_fetch_returns_at_least_one_batch_and_errors_past_the_end(
    kafka_bootstrap: str, topic: str, client: AIOKafkaClient
) -> None:
    """max_bytes=1 still yields the first whole batch; an offset past the end is out of range."""
    await _produce(kafka_bootstrap, topic, [b"a" * 500, b"b" * 500])
    error, _, records = await _fetch(client, topic, 0, max_wait_ms=0, partition_max_bytes=1)
    assert error == 0
    assert b"a" * 500 in records
    assert b"b" * 500 not in records
    error, _, records = await _fetch(client, topic, 5, max_wait_ms=0)
    assert error == 1  # OFFSET_OUT_OF_RANGE
    assert records == b""


async def test_fetch_response_limit_bounds_a_large_partition_limit(
    kafka_bootstrap: str, topic: str, client: AIOKafkaClient
) -> None:
    """fetch.max.bytes caps the response even when the partition limit is far larger."""
    big = [bytes([65 + i]) * 600_000 for i in range(3)]
    await _produce(kafka_bootstrap, topic, big, max_request_size=2 * ONE_MB)
    error, _, records = await _fetch(
        client, topic, 0, max_wait_ms=0, partition_max_bytes=20 * ONE_MB, max_bytes=ONE_MB
    )
    assert error == 0
    assert big[0] in records
    assert len(records) < ONE_MB


async def test_fetch_response_limit_is_hard_after_the_first_batch(
    kafka_bootstrap: str, topic: str, client: AIOKafkaClient
) -> None:
    """A second partition's batch that would overflow fetch.max.bytes is left for later."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    await asyncio.to_thread(lambda: admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=2 * ONE_MB)
    await producer.start()
    for partition in (0, 1):
        await producer.send_and_wait(topic, bytes([65 + partition]) * 600_000, partition=partition)
    await producer.stop()
    wanted = [(topic, [(0, 0, 20 * ONE_MB), (1, 0, 20 * ONE_MB)])]
    response = await client.send(client.get_random_node(), FetchRequest(0, 1, ONE_MB, 0, wanted))
    sizes = {p[0]: len(p[-1]) for p in response.topics[0][1]}
    assert sizes[0] > 600_000
    assert sizes[1] == 0


async def test_list_offsets_by_timestamp(kafka_bootstrap: str, topic: str) -> None:
    """offsets_for_times finds the first record at or after a timestamp."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for i, ts in enumerate((1_000, 2_000, 3_000)):
        await producer.send_and_wait(topic, str(i).encode(), timestamp_ms=ts)
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        found = await consumer.offsets_for_times({tp: 1_500})
        assert (found[tp].offset, found[tp].timestamp) == (1, 2_000)
        assert (await consumer.offsets_for_times({tp: 9_000}))[tp] is None
        assert (await consumer.beginning_offsets([tp]))[tp] == 0
        assert (await consumer.end_offsets([tp]))[tp] == 3
    finally:
        await consumer.stop()


async def test_metadata_reports_node_id_and_advertised_listener(tmp_path: Path) -> None:
    """Metadata names the configured node id and advertised host/port, not the bind address."""
    async with Broker.serve(
        port=0,
        data_dir=tmp_path / "log",
        node_id=7,
        advertised_host="localhost",
    ) as broker:
        port = int(broker.bootstrap_servers.rsplit(":", 1)[1])
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        metadata = await asyncio.to_thread(admin.list_topics, timeout=20)
        assert list(metadata.brokers) == [7]
        assert (metadata.brokers[7].host, metadata.brokers[7].port) == ("localhost", port)
        assert metadata.controller_id == 7


async def test_auto_create_can_be_turned_off(tmp_path: Path) -> None:
    """With auto-creation off, metadata for an unknown topic is UNKNOWN_TOPIC_OR_PARTITION."""
    async with Broker.serve(port=0, data_dir=tmp_path / "log", auto_create_topics=False) as broker:
        client = AIOKafkaClient(bootstrap_servers=broker.bootstrap_servers)
        await client.bootstrap()
        try:
            response = await client.send(client.get_random_node(), MetadataRequest(["nope"]))
            topics = response.topics
            assert topics[0][0] == 3
            assert "nope" not in broker.catalog.topics
        finally:
            await client.close()
