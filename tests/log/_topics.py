"""Reading a topic whole: what the tests that check a processor's output share."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord


async def read_topic(bootstrap: str, topic: str,
                     partitions: Sequence[int] | None = None) -> list[ConsumerRecord[bytes, bytes]]:
    """Every committed record of ``topic`` now, in partition then offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        found = consumer.partitions_for_topic(topic)
        if found is None:
            await consumer._client.force_metadata_update()
            found = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(found)
               if partitions is None or p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                out.extend(batch.get(tp, []))
        return out
    finally:
        await consumer.stop()
