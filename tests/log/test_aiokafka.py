"""aiokafka against the embedded log: idempotence, groups, transactions."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import ProducerFenced

from tests.log._poll import eventually


async def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def _read_all(
    bootstrap: str, topic: str, *, isolation_level: str = "read_uncommitted", expected: int
) -> list[tuple[int, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    seen: list[tuple[int, bytes]] = []
    try:
        deadline = time.monotonic() + 30
        while len(seen) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                seen.extend((r.offset, r.value) for r in records)
    finally:
        await consumer.stop()
    return seen


async def test_idempotent_producer_roundtrip_keeps_order_and_contiguous_offsets(
    kafka_bootstrap: str, topic: str
) -> None:
    """1,000 records from an idempotent producer come back in order at offsets 0..999."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, f"v{i}".encode()) for i in range(1000)]
        offsets = [(await f).offset for f in futures]
    finally:
        await producer.stop()
    assert offsets == list(range(1000))
    seen = await _read_all(kafka_bootstrap, topic, expected=1000)
    assert seen == [(i, f"v{i}".encode()) for i in range(1000)]


async def test_transactions_commit_and_abort_seen_by_each_isolation_level(
    kafka_bootstrap: str, topic: str
) -> None:
    """read_committed sees committed transactions only; read_uncommitted sees everything."""
    await _create_topic(kafka_bootstrap, topic, 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"txn-{topic}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-1")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-2")
    finally:
        await producer.stop()
    committed = await _read_all(
        kafka_bootstrap, topic, isolation_level="read_committed", expected=2
    )
    assert [v for _, v in committed] == [b"committed-1", b"committed-2"]
    everything = await _read_all(kafka_bootstrap, topic, expected=3)
    assert [v for _, v in everything] == [b"committed-1", b"aborted", b"committed-2"]


async def test_open_transaction_holds_back_read_committed_consumers(
    kafka_bootstrap: str, topic: str
) -> None:
    """Records after an open transaction stay invisible to read_committed until it ends."""
    await _create_topic(kafka_bootstrap, topic, 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"txn-{topic}")
    await producer.start()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"pending")
        early = await consumer.getmany(timeout_ms=300)
        assert not any(early.values())
        await producer.commit_transaction()
        got: list[bytes] = []

        async def received() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got.extend(r.value for r in records)
            return got == [b"pending"]

        await eventually(received, what="the committed record")
    finally:
        await consumer.stop()
        await producer.stop()


_MEMBER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from aiokafka import AIOKafkaConsumer

    async def main():
        consumer = AIOKafkaConsumer(
            sys.argv[2], bootstrap_servers=sys.argv[1], group_id=sys.argv[3],
            session_timeout_ms=6000, heartbeat_interval_ms=500)
        await consumer.start()
        while True:
            await consumer.getmany(timeout_ms=200)
            print(sorted(tp.partition for tp in consumer.assignment()), flush=True)

    asyncio.run(main())
    """
)


async def test_group_of_three_rebalances_on_leave_and_on_kill(
    kafka_bootstrap: str, topic: str
) -> None:
    """A 3-member group splits 6 partitions, and re-splits them when one leaves or is killed."""
    await _create_topic(kafka_bootstrap, topic, 6)
    group = f"g-{topic}"
    everything = set(range(6))

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )

    first, second = consumer(), consumer()
    external = subprocess.Popen(
        [sys.executable, "-c", _MEMBER_SCRIPT, kafka_bootstrap, topic, group],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        await first.start()
        await second.start()

        def owned(*members: AIOKafkaConsumer) -> list[set[int]]:
            return [{tp.partition for tp in m.assignment()} for m in members]

        async def three_way_split() -> bool:
            await asyncio.gather(first.getmany(timeout_ms=50), second.getmany(timeout_ms=50))
            a, b = owned(first, second)
            # The third member (the subprocess) holds the rest.
            return bool(a) and bool(b) and not a & b and len(a | b) < 6

        await eventually(three_way_split, timeout=40, what="a three-way split")

        # kill -9 of the external member: its partitions move after its session times out.
        external.kill()
        external.wait()

        async def two_way_split() -> bool:
            await asyncio.gather(first.getmany(timeout_ms=50), second.getmany(timeout_ms=50))
            a, b = owned(first, second)
            return bool(a) and bool(b) and not a & b and a | b == everything

        await eventually(two_way_split, timeout=40, what="the killed member's partitions")

        # A clean leave rebalances at once, well before the 6 s session timeout.
        started = time.monotonic()
        await second.stop()

        async def first_owns_all() -> bool:
            await first.getmany(timeout_ms=50)
            return owned(first)[0] == everything

        await eventually(first_owns_all, timeout=40, what="the survivor owning everything")
        assert time.monotonic() - started < 6, "leave waited for the session timeout"
    finally:
        external.kill()
        external.wait()
        await first.stop()
        await second.stop()


async def test_committed_offsets_resume_a_restarted_group(kafka_bootstrap: str, topic: str) -> None:
    """A consumer that commits and restarts resumes after its last committed offset."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(topic, str(i).encode())
    await producer.stop()
    group = f"g-{topic}"
    first = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await first.start()
    got: list[bytes] = []
    while len(got) < 4:
        for records in (await first.getmany(timeout_ms=500, max_records=4 - len(got))).values():
            got.extend(r.value for r in records)
    await first.commit({TopicPartition(topic, 0): 4})
    await first.stop()

    second = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await second.start()
    try:
        rest: list[bytes] = []

        async def resumed() -> bool:
            for records in (await second.getmany(timeout_ms=200)).values():
                rest.extend(r.value for r in records)
            return len(rest) >= 6

        await eventually(resumed, what="the rest of the records")
        assert rest == [str(i).encode() for i in range(4, 10)]
        assert await second.committed(TopicPartition(topic, 0)) == 4
    finally:
        await second.stop()


@pytest.mark.parametrize("acks", [0, 1, "all"])
async def test_every_acks_setting_stores_the_records(
    kafka_bootstrap: str, topic: str, acks: int | str
) -> None:
    """acks 0, 1 and all each end with the records readable."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks=acks)
    await producer.start()
    try:
        for i in range(20):
            await producer.send(topic, str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()
    seen = await _read_all(kafka_bootstrap, topic, expected=20)
    assert [v for _, v in seen] == [str(i).encode() for i in range(20)]


async def test_abandoned_transaction_is_aborted_after_its_timeout_and_fenced(
    kafka_bootstrap: str, topic: str
) -> None:
    """A transaction left open past transaction.timeout.ms is aborted; its producer is fenced."""
    await _create_topic(kafka_bootstrap, topic, 1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        transactional_id=f"txn-{topic}",
        transaction_timeout_ms=1500,
    )
    await producer.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level="read_committed")
    await consumer.start()
    tp = TopicPartition(topic, 0)
    try:
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"abandoned")
        assert (await consumer.end_offsets([tp]))[tp] == 0  # held back by the open txn

        async def aborted() -> bool:
            # The abort marker moves the last stable offset past the record and the marker.
            return (await consumer.end_offsets([tp]))[tp] == 2

        await eventually(aborted, timeout=30, what="the coordinator to abort the transaction")
        with pytest.raises(ProducerFenced):
            await producer.commit_transaction()
        # Read committed from the start to the end: the aborted record never shows.
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        seen: list[bytes] = []

        async def at_end() -> bool:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                seen.extend(r.value for r in records)
            return await consumer.position(tp) >= 2

        await eventually(at_end, what="the committed reader to pass the aborted record")
        assert seen == []
    finally:
        await consumer.stop()
        await producer.stop()
    everything = await _read_all(kafka_bootstrap, topic, expected=1)
    assert [v for _, v in everything] == [b"abandoned"]


async def test_static_member_restart_keeps_its_partitions_without_a_rebalance(
    kafka_bootstrap: str, topic: str
) -> None:
    """A restarted static member (group.instance.id) gets its partitions back; no rebalance."""
    from aiokafka.abc import ConsumerRebalanceListener

    await _create_topic(kafka_bootstrap, topic, 4)
    group = f"g-{topic}"

    class Recorder(ConsumerRebalanceListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.assignments: list[set[int]] = []

        async def on_partitions_revoked(self, revoked: object) -> None:
            pass

        async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
            self.assignments.append({tp.partition for tp in assigned})

    def member(instance: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            group_instance_id=instance,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=500,
        )

    first, second = member("a"), member("b")
    watcher = Recorder()
    first.subscribe([topic])
    second.subscribe([topic], listener=watcher)
    await first.start()
    await second.start()
    restarted = member("a")
    try:

        async def split() -> bool:
            await asyncio.gather(first.getmany(timeout_ms=50), second.getmany(timeout_ms=50))
            a = {tp.partition for tp in first.assignment()}
            b = {tp.partition for tp in second.assignment()}
            return len(a) == 2 and len(b) == 2 and not a & b

        await eventually(split, timeout=40, what="a two-way split")
        before = {tp.partition for tp in first.assignment()}
        rebalances_seen = len(watcher.assignments)
        await first.stop()  # a static member does not leave the group when it stops
        restarted.subscribe([topic])
        await restarted.start()

        async def back() -> bool:
            await asyncio.gather(restarted.getmany(timeout_ms=50), second.getmany(timeout_ms=50))
            return {tp.partition for tp in restarted.assignment()} == before

        await eventually(back, timeout=40, what="the restarted member's old partitions")
        # Three heartbeat intervals: a rebalance would have reached the other member by now.
        await second.getmany(timeout_ms=1500)
        assert len(watcher.assignments) == rebalances_seen, "the other member was rebalanced"
    finally:
        await restarted.stop()
        await second.stop()
        await first.stop()
