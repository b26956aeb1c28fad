"""RecordConsumer: retries, dead-letters, commits after handling, and survives bad records."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from services.kernel import (
    Delivery,
    Publisher,
    RecordConsumer,
    RetryPolicy,
    Settings,
    dead_letter_topic,
)
from services.log import Broker
from tests.log._poll import eventually


async def test_bad_records_are_parked_and_the_rest_handled(broker: Broker, topic: str) -> None:
    """Undecodable and always-failing records go to the DLQ; flaky ones are retried; all commit."""
    settings = Settings.from_env("c", {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers})
    attempts: Counter[str] = Counter()
    handled: list[str] = []

    async def handler(delivery: Delivery[dict[str, Any]]) -> None:
        name = delivery.value["name"]
        attempts[name] += 1
        if name == "poison" or (name == "flaky" and delivery.attempt == 1):
            raise RuntimeError(f"cannot handle {name}")
        handled.append(name)

    async with Publisher(settings) as publisher:
        for value in (b'{"name":"ok"}', b"{not json", b'{"name":"poison"}', b'{"name":"flaky"}',
                      b'{"name":"after"}'):
            await publisher.publish(topic, value)
    loop = RecordConsumer(settings, [topic], group_id="g", handler=handler, decode=json.loads,
                          retry=RetryPolicy(max_attempts=3, backoff_seconds=0.01))
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(loop.run(stop))
        await eventually(lambda: handled == ["ok", "flaky", "after"], what="all handled")
        stop.set()
    assert attempts == Counter({"ok": 1, "poison": 3, "flaky": 2, "after": 1})

    parked = AIOKafkaConsumer(dead_letter_topic(topic), bootstrap_servers=broker.bootstrap_servers,
                              auto_offset_reset="earliest", group_id="check")
    await parked.start()
    try:
        records = [await parked.getone(), await parked.getone()]
    finally:
        await parked.stop()
    errors = [(r.value, dict(r.headers)["x-error-type"], dict(r.headers)["x-error-attempts"])
              for r in records]
    assert errors == [(b"{not json", b"JSONDecodeError", b"1"),
                      (b'{"name":"poison"}', b"RuntimeError", b"3")]

    offsets = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id="g")
    await offsets.start()
    try:
        assert await offsets.committed(TopicPartition(topic, 0)) == 5
    finally:
        await offsets.stop()
