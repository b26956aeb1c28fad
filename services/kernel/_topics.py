"""Create the topics a process needs before it uses them (idempotently).

``netscript init`` creates every topic the plugins declare; a process started on its own (in
tests, or ``netscript sagas run`` against a fresh log) ensures its own, so a producer never
auto-creates one with the broker's default partition count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.kernel._errors import KernelError


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicConfig:
    """A topic to ensure: name, partition count, and its Kafka configs."""

    name: str
    partitions: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)


async def ensure_topics(bootstrap_servers: str, topics: Sequence[TopicConfig], *,
                        replication_factor: int = 1) -> list[str]:
    """Create each of ``topics`` that does not exist; returns the names it created.

    An existing topic is left as it is. Raises :class:`KernelError` when the log refuses one.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError
    from aiokafka.errors import for_code as error_for_code

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15_000)
    created: list[str] = []
    try:
        await admin.start()
        response = await admin.create_topics([
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=replication_factor,
                     topic_configs=dict(t.configs)) for t in topics])
        for name, code, *rest in response.topic_errors:
            if code and error_for_code(code) is not TopicAlreadyExistsError:
                raise KernelError(f"the log refused topic {name!r}: "
                                  f"{(rest[0] if rest else None) or error_for_code(code).__name__}")
            if not code:
                created.append(name)
    except KafkaError as exc:
        raise KernelError(f"cannot create topics on the log at {bootstrap_servers}: {exc}; "
                          "start it or set KAFKA_BOOTSTRAP_SERVERS") from exc
    finally:
        await admin.close()
    return created


async def partition_counts(bootstrap_servers: str, topics: Sequence[str]) -> dict[str, int]:
    """How many partitions each of ``topics`` (which must exist) has."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        counts = {}
        for topic in topics:
            partitions = await consumer._client._wait_on_metadata(topic)
            counts[topic] = len(partitions)
        return counts
    finally:
        await consumer.stop()
