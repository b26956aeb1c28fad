"""librdkafka clients against the embedded log: confluent-kafka and Debian's kcat."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka.admin import AdminClient, NewTopic


def _consume(bootstrap: str, topic: str, expected: int, **config: object) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            **config,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(values) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            values.append(message.value())
    finally:
        consumer.close()
    return values


def test_confluent_produce_and_group_consume(kafka_bootstrap: str, topic: str) -> None:
    """An idempotent confluent-kafka producer's records reach a confluent group consumer."""
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    delivered: list[int] = []

    def on_delivery(err: object, msg: object) -> None:
        assert err is None, err
        delivered.append(msg.offset())  # type: ignore[attr-defined]

    for i in range(500):
        producer.produce(topic, f"m{i}".encode(), key=str(i % 7).encode(), on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert sorted(delivered) == list(range(500))
    assert _consume(kafka_bootstrap, topic, 500) == [f"m{i}".encode() for i in range(500)]


def test_confluent_transactions(kafka_bootstrap: str, topic: str) -> None:
    """confluent-kafka transactions: the aborted one is invisible to read_committed."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{topic}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"keep-1", partition=0)
    producer.produce(topic, b"keep-2", partition=1)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b"drop", partition=0)
    producer.flush(30)  # on the log before the abort (librdkafka purges unsent records)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b"keep-3", partition=0)
    producer.commit_transaction(30)
    committed = _consume(kafka_bootstrap, topic, 3, **{"isolation.level": "read_committed"})
    assert sorted(committed) == [b"keep-1", b"keep-2", b"keep-3"]
    everything = _consume(kafka_bootstrap, topic, 4, **{"isolation.level": "read_uncommitted"})
    assert sorted(everything) == [b"drop", b"keep-1", b"keep-2", b"keep-3"]


def test_confluent_admin_topic_configs(kafka_bootstrap: str, topic: str) -> None:
    """Topic configs set at creation are described back, and unknown keys are refused."""
    from confluent_kafka.admin import ConfigResource

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created = NewTopic(topic, 3, 1, config={"cleanup.policy": "compact", "retention.ms": "1000"})
    admin.create_topics([created])[topic].result(30)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["retention.ms"].value == "1000"
    assert configs["segment.bytes"].is_default
    bad = NewTopic(f"{topic}-bad", 1, 1, config={"no.such.key": "1"})
    with pytest.raises(KafkaException, match=r"no\.such\.key"):
        admin.create_topics([bad])[f"{topic}-bad"].result(30)
    metadata = admin.list_topics(timeout=30)
    assert len(metadata.topics[topic].partitions) == 3
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "offsets-probe"})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    consumer.close()
    assert (low, high) == (0, 0)


kcat = shutil.which("kcat") or shutil.which("kafkacat")
needs_kcat = pytest.mark.skipif(
    kcat is None, reason="kcat is not installed (apt-get install kcat; .ci/run installs it)"
)


@pytest.mark.requires_kcat
@needs_kcat
def test_kcat_metadata_produce_and_consume(kafka_bootstrap: str, topic: str) -> None:
    """kcat -L lists the broker and topic, -P produces lines, -C -e reads them back."""
    assert kcat is not None
    lines = [f"line-{i}" for i in range(100)]
    subprocess.run(
        [kcat, "-b", kafka_bootstrap, "-P", "-t", topic],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
        timeout=60,
    )
    listing = subprocess.run(
        [kcat, "-b", kafka_bootstrap, "-L", "-t", topic],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "1 brokers:" in listing
    assert f'topic "{topic}" with 1 partitions' in listing
    consumed = subprocess.run(
        [kcat, "-b", kafka_bootstrap, "-C", "-t", topic, "-e", "-f", "%o %s\\n"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    assert consumed == [f"{i} line-{i}" for i in range(100)]


def test_commit_for_an_unknown_topic_fails_per_partition(kafka_bootstrap: str) -> None:
    """Offsets for partitions the broker does not have are refused, not stored."""
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "unknown-commit"})
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(KafkaException) as failed:
            consumer.commit(
                offsets=[TopicPartition(missing, 0, 5), TopicPartition(missing, 1, 5)],
                asynchronous=False,
            )
        assert failed.value.args[0].code() == 3  # UNKNOWN_TOPIC_OR_PART
    finally:
        consumer.close()


def test_second_static_member_with_the_same_instance_id_fences_the_first(
    kafka_bootstrap: str, topic: str
) -> None:
    """Two consumers claiming one group.instance.id: the older one is fenced (fatal)."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    config = {
        "bootstrap.servers": kafka_bootstrap,
        "group.id": f"g-{topic}",
        "group.instance.id": "the-one",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 200,
    }
    first, second = Consumer(config), Consumer(config)
    first.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while not first.assignment() and time.monotonic() < deadline:
            first.poll(0.2)
        assert first.assignment()
        second.subscribe([topic])
        fenced = None
        deadline = time.monotonic() + 30
        while fenced is None and time.monotonic() < deadline:
            second.poll(0.1)
            message = first.poll(0.1)
            if message is not None and message.error():
                fenced = message.error()
        assert fenced is not None, "the first member was never told it was fenced"
        # librdkafka raises it as a fatal error whose text carries the broker's FENCED_INSTANCE_ID.
        assert fenced.code() == ConfluentError._FATAL
        assert "fenced by other consumer with same group.instance.id" in fenced.str()
    finally:
        second.close()
        first.close()


def test_committed_offsets_keep_the_leader_epoch(kafka_bootstrap: str, topic: str) -> None:
    """A commit made from a consumed message returns with its leader epoch (KIP-320)."""
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, b"one")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        message = None
        deadline = time.monotonic() + 30
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
        assert message is not None
        assert message.error() is None
        consumer.commit(message=message, asynchronous=False)
        (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=30)
        assert committed.offset == 1
        assert committed.leader_epoch == message.leader_epoch() == 0
    finally:
        consumer.close()
