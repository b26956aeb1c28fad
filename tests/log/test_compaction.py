"""Compacted topics keep the latest value per key; bad input on them is refused."""

from __future__ import annotations

import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import NewTopic as ConfluentTopic

from services.log import Broker


async def _read(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        seen: list[tuple[bytes | None, bytes | None]] = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.extend((r.key, r.value) for r in records)
        return seen
    finally:
        await consumer.stop()


async def test_cleaner_keeps_exactly_the_latest_value_per_key(broker: Broker) -> None:
    """After the cleaner runs, a reader from the start sees one record per key: its latest."""
    bootstrap = broker.bootstrap_servers
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics(
        [
            NewTopic(
                "state",
                1,
                1,
                topic_configs={
                    "cleanup.policy": "compact",
                    "segment.bytes": "2048",
                    "delete.retention.ms": "0",
                },
            )
        ]
    )
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    for round_ in range(20):
        for key in range(10):
            await producer.send_and_wait("state", f"{round_}".encode(), key=f"k{key}".encode())
    await producer.send_and_wait("state", None, key=b"k3")  # a tombstone
    await producer.stop()
    broker.catalog.partition("state", 0).roll()
    broker.run_cleaner(now_ms=int(time.time() * 1000) + 1000)
    remaining = await _read(bootstrap, "state")
    expected = {f"k{k}".encode(): b"19" for k in range(10) if k != 3}
    assert dict(remaining) == expected
    assert len(remaining) == len(expected)


def test_null_key_on_a_compacted_topic_is_rejected(kafka_bootstrap: str, topic: str) -> None:
    """A record without a key cannot go to a compacted topic (INVALID_RECORD); keyed ones can."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created = ConfluentTopic(topic, 1, 1, config={"cleanup.policy": "compact"})
    admin.create_topics([created])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "retries": 0})
    outcomes: list[tuple[int | None, int]] = []

    def on_delivery(err: ConfluentError | None, msg: object) -> None:
        outcomes.append((err.code() if err else None, msg.offset()))  # type: ignore[attr-defined]

    producer.produce(topic, b"no key", on_delivery=on_delivery)
    producer.flush(30)
    producer.produce(topic, b"value", key=b"k", on_delivery=on_delivery)
    producer.flush(30)
    assert outcomes[0][0] == ConfluentError.INVALID_RECORD
    assert outcomes[1] == (None, 0)


async def test_background_cleaner_applies_time_retention(tmp_path: Path) -> None:
    """With retention.ms passed, the broker's own cleaner drops old segments and moves the start."""
    from aiokafka.admin import AIOKafkaAdminClient as Admin

    from services.log.testing import BrokerProcess
    from tests.log._poll import eventually

    with BrokerProcess(tmp_path / "data", args=("--cleaner-interval-ms", "100")) as broker:
        bootstrap = broker.bootstrap_servers
        admin = Admin(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics(
            [NewTopic("aging", 1, 1, topic_configs={"retention.ms": "1", "segment.bytes": "1024"})]
        )
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        for i in range(100):
            await producer.send_and_wait("aging", b"x" * 100, timestamp_ms=1000 + i)
        await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        tp = TopicPartition("aging", 0)
        try:

            async def trimmed() -> bool:
                return (await consumer.beginning_offsets([tp]))[tp] > 0

            await eventually(trimmed, what="retention to delete the old segments")
            assert (await consumer.end_offsets([tp]))[tp] == 100
        finally:
            await consumer.stop()


async def test_keyless_records_are_named_in_the_produce_response(broker: Broker) -> None:
    """Produce v8 names the keyless record of a rejected batch by its index (KIP-467)."""
    import asyncio
    import struct

    from aiokafka.protocol.produce import ProduceRequest_v8, ProduceResponse_v8
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    broker.catalog.create("keyed-v8", 1, {"cleanup.policy": "compact"})
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 20)
    builder.append(0, 1, b"a", b"first", [])
    builder.append(1, 1, None, b"keyless", [])
    builder.append(2, 1, b"c", b"third", [])
    request = ProduceRequest_v8(None, 1, 10_000, [("keyed-v8", [(0, bytes(builder.build()))])])
    header = struct.pack(">hhih", 0, 8, 1, 4) + b"test"
    frame = header + request.encode()
    host, port = broker.bootstrap_servers.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(struct.pack(">i", len(frame)) + frame)
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    payload = await reader.readexactly(size)
    writer.close()
    response = ProduceResponse_v8.decode(payload[4:])
    partition = response.topics[0][1][0]
    assert partition[1] == 87  # INVALID_RECORD
    assert [index for index, _ in partition[5]] == [1]
    assert "key" in partition[6]
    assert broker.catalog.partition("keyed-v8", 0).log_end_offset == 0
