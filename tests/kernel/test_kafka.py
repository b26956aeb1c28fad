"""Publishing: trace context travels in record headers; bad records go to the dead-letter topic."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.kernel import (
    Publisher,
    PublishError,
    Settings,
    consume_span,
    dead_letter_topic,
    send_to_dead_letter,
    traceparent_of,
    tracer,
)
from services.log import Broker


async def read_one(bootstrap: str, topic: str) -> ConsumerRecord:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        return await consumer.getone()
    finally:
        await consumer.stop()


async def test_traceparent_travels_from_producer_to_consumer(
    broker: Broker, topic: str, spans: InMemorySpanExporter
) -> None:
    """The consumer's span continues the trace the publisher's span started."""
    settings = Settings.from_env("t", {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers})
    with tracer().start_as_current_span("request") as root:
        async with Publisher(settings) as publisher:
            stored = await publisher.publish(topic, b"v", key=b"k")
    record = await read_one(broker.bootstrap_servers, topic)
    assert record.offset == stored.offset
    traceparent = traceparent_of(record.headers)
    assert traceparent is not None
    trace_id = root.get_span_context().trace_id
    assert traceparent.split("-")[1] == f"{trace_id:032x}"
    with consume_span(record.topic, record.partition, record.offset, record.headers):
        pass
    by_name = {span.name: span for span in spans.get_finished_spans()}
    send, process = by_name[f"send {topic}"], by_name[f"process {topic}"]
    assert send.kind == trace.SpanKind.PRODUCER
    assert process.context.trace_id == trace_id
    assert process.parent is not None
    assert process.parent.span_id == send.context.span_id


async def test_dead_letter_keeps_the_record_and_says_why(broker: Broker, topic: str) -> None:
    """A failed record lands on <topic>.dlq intact, with the error and its origin in headers."""
    settings = Settings.from_env("t", {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers})
    async with Publisher(settings) as publisher:
        await publisher.publish(topic, b"\xffnot-json", key=b"k1", headers=[("h", b"1")])
        bad = await read_one(broker.bootstrap_servers, topic)
        try:
            bad.value.decode("ascii")  # type: ignore[union-attr]
            raise AssertionError("expected a decode error")
        except UnicodeDecodeError as exc:
            await send_to_dead_letter(publisher, bad, exc, attempts=3)
    parked = await read_one(broker.bootstrap_servers, dead_letter_topic(topic))
    headers = dict(parked.headers)
    assert (parked.key, parked.value) == (b"k1", b"\xffnot-json")
    assert headers["h"] == b"1"
    assert headers["x-error-type"] == b"UnicodeDecodeError"
    assert b"can't decode" in headers["x-error-message"]
    assert headers["x-error-attempts"] == b"3"
    assert headers["x-original-topic"] == topic.encode()
    assert headers["x-original-offset"] == str(bad.offset).encode()


async def test_publishing_without_a_log_is_a_clear_error() -> None:
    """A publisher that cannot reach the log says so and how to fix it."""
    settings = Settings.from_env("t", {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    with pytest.raises(PublishError, match="KAFKA_BOOTSTRAP_SERVERS"):
        async with Publisher(settings):
            pass
