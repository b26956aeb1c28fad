"""Consumer-group administration: ListGroups v4+ states, DescribeGroups v4+ static members and
authorized operations, and OffsetDelete."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaError,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from services.log._apis import ApiKey
from tests.log._raw import call


def _group() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


@contextmanager
def _member(bootstrap: str, group: str, topics: list[str], **conf: str) -> Iterator[Consumer]:
    """A consumer that has joined ``group`` and holds an assignment."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **conf})
    consumer.subscribe(topics)
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment():
            assert time.monotonic() < deadline, "the consumer never got an assignment"
            consumer.poll(0.1)
        yield consumer
    finally:
        consumer.close()


def _commit_without_membership(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def _topics(admin: AdminClient, *names: str) -> None:
    for future in admin.create_topics([NewTopic(name, 2, 1) for name in names]).values():
        future.result(30)


def test_list_groups_filters_by_state(kafka_bootstrap: str, topic: str) -> None:
    """ListGroups v4+ reports each group's state (offsets alone mean Empty) and v5+ its type
    (classic), and filters on both."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    _topics(admin, topic)
    live, offsets_only = _group(), _group()
    _commit_without_membership(kafka_bootstrap, offsets_only, [TopicPartition(topic, 0, 5)])
    with _member(kafka_bootstrap, live, [topic]):
        listed = {g.group_id: g for g in admin.list_consumer_groups().result(30).valid}
        assert listed[live].state == ConsumerGroupState.STABLE
        assert not listed[live].is_simple_consumer_group
        assert listed[offsets_only].state == ConsumerGroupState.EMPTY
        assert listed[offsets_only].is_simple_consumer_group
        empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(30)
        names = {g.group_id for g in empty.valid}
        assert offsets_only in names
        assert live not in names
        classic = admin.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result(30)
        assert {live, offsets_only} <= {g.group_id for g in classic.valid}
        assert listed[live].type == ConsumerGroupType.CLASSIC
        modern = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(30)
        assert modern.valid == []


def test_describe_groups_shows_static_members_and_operations(
    kafka_bootstrap: str, topic: str
) -> None:
    """DescribeGroups v4+ names a static member's group.instance.id; operations on request."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    _topics(admin, topic)
    group = _group()
    with _member(kafka_bootstrap, group, [topic], **{"group.instance.id": "static-1"}):
        described = admin.describe_consumer_groups([group], include_authorized_operations=True)
        description = described[group].result(30)
        assert [m.group_instance_id for m in description.members] == ["static-1"]
        assert {op.name for op in description.authorized_operations} == {
            "READ",
            "DESCRIBE",
            "DELETE",
        }


def _offset_delete(bootstrap: str, group: str, partitions: dict[str, list[int]]) -> dict[str, Any]:
    response = call(
        bootstrap,
        ApiKey.OFFSET_DELETE,
        0,
        {
            "group_id": group,
            "topics": [
                {"name": name, "partitions": [{"partition_index": p} for p in parts]}
                for name, parts in partitions.items()
            ],
        },
    )
    errors = {
        (t["name"], p["partition_index"]): p["error_code"]
        for t in response["topics"]
        for p in t["partitions"]
    }
    return {"error_code": response["error_code"], "partitions": errors}


def test_offset_delete_forgets_offsets_of_an_empty_group(kafka_bootstrap: str, topic: str) -> None:
    """OffsetDelete drops the named offsets of a group without members; unknown ones error."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    _topics(admin, topic)
    group = _group()
    _commit_without_membership(
        kafka_bootstrap, group, [TopicPartition(topic, 0, 10), TopicPartition(topic, 1, 20)]
    )
    result = _offset_delete(kafka_bootstrap, group, {topic: [0, 7], f"{topic}-gone": [0]})
    assert result == {
        "error_code": 0,
        "partitions": {
            (topic, 0): 0,
            (topic, 7): KafkaError.UNKNOWN_TOPIC_OR_PART,
            (f"{topic}-gone", 0): KafkaError.UNKNOWN_TOPIC_OR_PART,
        },
    }
    request = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)]  # every committed offset of the group
    )
    remaining = request[group].result(30).topic_partitions
    assert [(tp.partition, tp.offset) for tp in remaining] == [(1, 20)]
    assert _offset_delete(kafka_bootstrap, _group(), {topic: [0]})["error_code"] == (
        KafkaError.GROUP_ID_NOT_FOUND
    )


def test_offset_delete_keeps_offsets_of_subscribed_topics(kafka_bootstrap: str, topic: str) -> None:
    """While members subscribe to a topic its offsets stay (GROUP_SUBSCRIBED_TO_TOPIC)."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    other = f"{topic}-other"
    _topics(admin, topic, other)
    group = _group()
    with _member(kafka_bootstrap, group, [topic]) as consumer:
        consumer.commit(
            offsets=[TopicPartition(topic, 0, 3), TopicPartition(other, 0, 4)], asynchronous=False
        )
        result = _offset_delete(kafka_bootstrap, group, {topic: [0], other: [0]})
    assert result == {
        "error_code": 0,
        "partitions": {(topic, 0): KafkaError.GROUP_SUBSCRIBED_TO_TOPIC, (other, 0): 0},
    }
