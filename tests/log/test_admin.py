"""Administration through real admin clients: topics, partitions, configs, groups."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)


def test_create_partitions_and_delete_topics(kafka_bootstrap: str, topic: str) -> None:
    """A topic grows from 1 to 4 partitions, and a deleted topic disappears from metadata."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(30)
    assert len(admin.list_topics(timeout=30).topics[topic].partitions) == 4
    admin.delete_topics([topic])[topic].result(30)
    assert topic not in admin.list_topics(timeout=30).topics


def test_incremental_alter_configs_sets_appends_and_deletes(
    kafka_bootstrap: str, topic: str
) -> None:
    """IncrementalAlterConfigs SET, APPEND to cleanup.policy, and DELETE back to the default."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "5000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry(
                "cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND
            ),
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(30)
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    configs = next(iter(described.values())).result(30)
    assert configs["retention.ms"].value == "5000"
    assert configs["cleanup.policy"].value == "compact,delete"
    reset = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)
        ],
    )
    admin.incremental_alter_configs([reset])[reset].result(30)
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    configs = next(iter(described.values())).result(30)
    assert configs["retention.ms"].is_default


def test_list_and_describe_groups(kafka_bootstrap: str, topic: str) -> None:
    """A live group is listed and described as Stable with its member."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": group, "client.id": "describer"}
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment()
        listed = admin.list_consumer_groups().result(30)
        assert group in {g.group_id for g in listed.valid}
        described = admin.describe_consumer_groups([group])[group].result(30)
        assert described.state.name == "STABLE"
        assert [m.client_id for m in described.members] == ["describer"]
    finally:
        consumer.close()
