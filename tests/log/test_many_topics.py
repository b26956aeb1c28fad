"""Thousands of topics on a small ``ulimit -n``: open files stay bounded, nothing is lost.

The broker runs as its own process with RLIMIT_NOFILE lowered, as on a default Linux box, and
its descriptor count (``/proc/<pid>/fd``) is sampled throughout.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from services.log import LogError
from services.log.testing import BrokerProcess
from tests.log._poll import eventually

pytestmark = pytest.mark.slow

TOPICS = 2000
RECORDS_PER_TOPIC = 2
NOFILE = 256
MAX_OPEN_FILES = 64
# Descriptors that are not segment files: stdio, epoll, the listening socket, the data-dir
# lock, the metadata journals, client connections and a transient one or two.
OTHER_FDS = 40
QUIET = {"log_level": 3}  # librdkafka: errors only (a kill -9 makes it chatty)


class FdSampler:
    """The highest descriptor count of a process, sampled every few ms in a thread."""

    def __init__(self, broker: BrokerProcess) -> None:
        self._broker = broker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = 0

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            try:
                count = len(os.listdir(f"/proc/{self._broker.pid}/fd"))
            except (FileNotFoundError, LogError):
                continue  # between a kill and a restart
            self.peak = max(self.peak, count)

    @contextmanager
    def running(self) -> Iterator[FdSampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def consume_all(bootstrap: str, topics: list[str], expected: int) -> dict[str, list[bytes]]:
    """Every record of partition 0 of each topic, from the beginning."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False, **QUIET}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING) for topic in topics])
        seen: dict[str, list[bytes]] = {}
        count = 0
        deadline = time.monotonic() + 60
        while count < expected and time.monotonic() < deadline:
            for message in consumer.consume(10_000, 0.5):
                assert message.error() is None, message.error()
                seen.setdefault(message.topic(), []).append(message.value())
                count += 1
        return seen
    finally:
        consumer.close()


def test_thousands_of_topics_under_a_low_ulimit_survive_kill_9(tmp_path: Path) -> None:
    """2,000 topics, acks=all, RLIMIT_NOFILE 256: fds stay bounded, kill -9 loses nothing."""
    broker = BrokerProcess(
        tmp_path / "data",
        nofile_limit=NOFILE,
        args=("--max-open-files", str(MAX_OPEN_FILES)),
    )
    topics = [f"stream-{i:05d}" for i in range(TOPICS)]
    acked: dict[str, list[bytes]] = {}
    with ExitStack() as stack:
        stack.enter_context(broker)
        sampler = stack.enter_context(FdSampler(broker).running())
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers, **QUIET})
        for start in range(0, TOPICS, 500):
            new = [NewTopic(topic, 1, 1) for topic in topics[start : start + 500]]
            for future in admin.create_topics(new, request_timeout=60).values():
                future.result()
        del admin

        def delivered(err: KafkaError | None, message: Message) -> None:
            assert err is None, err
            acked.setdefault(message.topic(), []).append(message.value())

        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                **QUIET,
            }
        )
        for round_ in range(RECORDS_PER_TOPIC):
            for topic in topics:
                producer.produce(topic, f"{topic}/{round_}".encode(), on_delivery=delivered)
                producer.poll(0)
        assert producer.flush(60) == 0
        del producer
        assert acked == {
            topic: [f"{topic}/{r}".encode() for r in range(RECORDS_PER_TOPIC)] for topic in topics
        }
        assert consume_all(broker.bootstrap_servers, topics, TOPICS * RECORDS_PER_TOPIC) == acked

        broker.kill()
        broker.start()
        assert consume_all(broker.bootstrap_servers, topics, TOPICS * RECORDS_PER_TOPIC) == acked
        assert "Too many open files" not in broker.log_file.read_text()
    assert 0 < sampler.peak <= MAX_OPEN_FILES + OTHER_FDS < NOFILE


async def test_accept_out_of_descriptors_keeps_serving_open_connections(tmp_path: Path) -> None:
    """accept() hitting EMFILE is logged and retried; open connections go on being served."""
    broker = BrokerProcess(tmp_path / "data", nofile_limit=64, args=("--max-open-files", "16"))
    with ExitStack() as stack:
        stack.enter_context(broker)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait("before", b"1")
            host, port = broker.bootstrap_servers.split(":")
            flood = [
                stack.enter_context(socket.create_connection((host, int(port)), timeout=5))
                for _ in range(80)  # more than the broker has descriptors for
            ]
            await eventually(
                lambda: "cannot accept connections" in broker.log_file.read_text(),
                what="the broker to report that accept() ran out of descriptors",
            )
            # The producer's connection was accepted before: it is still served.
            metadata = await asyncio.wait_for(producer.send_and_wait("before", b"2"), 10)
            assert metadata.offset == 1
            for sock in flood:
                sock.close()
            late = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
            await asyncio.wait_for(late.start(), 15)
            try:
                assert (await late.send_and_wait("before", b"3")).offset == 2
            finally:
                await late.stop()
        finally:
            await producer.stop()
        log = broker.log_file.read_text()
        assert "Traceback" not in log, log[-3000:]
        assert log.count("cannot accept connections") <= 2, "the report is not rate-limited"
