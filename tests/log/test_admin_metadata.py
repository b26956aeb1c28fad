"""Describing the cluster and topics: Metadata v8-v12 (topic ids, authorized operations) and
DescribeCluster."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic

from services.log._apis import ApiKey
from tests.log._raw import call

TOPIC_OPERATIONS = {"READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE"} | {
    "DESCRIBE_CONFIGS",
    "ALTER_CONFIGS",
}
CLUSTER_OPERATIONS = {"CREATE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"} | {
    "IDEMPOTENT_WRITE",
    "ALTER",
    "DESCRIBE",
}


def _names(operations: list[AclOperation] | None) -> set[str]:
    return {op.name for op in operations or []}


def test_describe_cluster_reports_the_node_and_operations_when_asked(kafka_bootstrap: str) -> None:
    """DescribeCluster names the single node as controller; operations only when requested."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    plain = admin.describe_cluster().result(30)
    assert [node.port for node in plain.nodes] == [int(kafka_bootstrap.rsplit(":", 1)[1])]
    assert plain.controller.id == plain.nodes[0].id
    assert plain.cluster_id
    assert not plain.authorized_operations
    with_ops = admin.describe_cluster(include_authorized_operations=True).result(30)
    assert _names(with_ops.authorized_operations) == CLUSTER_OPERATIONS


def test_describe_topics_reports_topic_ids_and_unknown_topics(
    kafka_bootstrap: str, topic: str
) -> None:
    """A described topic has a non-zero id and its partitions; a missing one is unknown."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    missing = f"{topic}-missing"
    described = admin.describe_topics(
        TopicCollection([topic, missing]), include_authorized_operations=True
    )
    found = described[topic].result(30)
    assert str(found.topic_id) != "AAAAAAAAAAAAAAAAAAAAAA"  # the zero uuid, base64
    assert [p.id for p in found.partitions] == [0, 1, 2]
    assert _names(found.authorized_operations) == TOPIC_OPERATIONS
    with pytest.raises(KafkaException) as failed:
        described[missing].result(30)
    assert failed.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_metadata_v12_looks_topics_up_by_id(kafka_bootstrap: str, topic: str) -> None:
    """Metadata v12 answers a topic asked for by id with its name; an unknown id is refused."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    by_name = call(kafka_bootstrap, ApiKey.METADATA, 12, {"topics": [{"name": topic}]})
    (entry,) = by_name["topics"]
    topic_id = entry["topic_id"]
    assert topic_id != bytes(16)
    unknown = bytes(range(16))
    by_id = call(
        kafka_bootstrap,
        ApiKey.METADATA,
        12,
        {"topics": [{"topic_id": topic_id, "name": None}, {"topic_id": unknown, "name": None}]},
    )
    found, missing = by_id["topics"]
    assert (found["error_code"], found["name"], len(found["partitions"])) == (0, topic, 2)
    assert (missing["error_code"], missing["name"]) == (KafkaError.UNKNOWN_TOPIC_ID, None)


def test_describe_cluster_api_lists_brokers_not_controllers(kafka_bootstrap: str) -> None:
    """DescribeCluster (API 60) lists this broker; asking for controllers is a mismatch."""
    brokers = call(
        kafka_bootstrap,
        ApiKey.DESCRIBE_CLUSTER,
        1,
        {"include_cluster_authorized_operations": False, "endpoint_type": 1},
    )
    assert brokers["error_code"] == 0
    assert [b["port"] for b in brokers["brokers"]] == [int(kafka_bootstrap.rsplit(":", 1)[1])]
    assert brokers["cluster_authorized_operations"] == -(2**31)
    controllers = call(
        kafka_bootstrap,
        ApiKey.DESCRIBE_CLUSTER,
        1,
        {"include_cluster_authorized_operations": False, "endpoint_type": 2},
    )
    assert controllers["error_code"] == KafkaError.MISMATCHED_ENDPOINT_TYPE
