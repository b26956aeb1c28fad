"""Independent Confluent clients read what NetScript writes, and the other way round.

kcat (librdkafka + libserdes + avro-c) and confluent-kafka's Avro serdes (Python) use our
registry's REST API and Confluent's wire format exactly as they use Confluent's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from typing import Any

import pytest

from services.kernel import Publisher, Settings
from services.kernel.testing import RunningServer
from services.log import Broker
from services.registry import AvroCodec, RegistryClient
from tests.registry.conftest import record

EVENT = record(
    "Shipment", {"name": "id", "type": "long"},
    {"name": "carrier", "type": {"type": "enum", "name": "Carrier", "symbols": ["UPS", "DHL"]}},
    {"name": "parcels", "type": {"type": "array", "items": "int"}},
    {"name": "labels", "type": {"type": "map", "values": "string"}},
    {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "weight", "type": "double"},
)
SENT: list[dict[str, Any]] = [
    {"id": 1, "carrier": "UPS", "parcels": [1, 2], "labels": {"dock": "4"}, "note": "fragile",
     "weight": 2.5},
    {"id": 2, "carrier": "DHL", "parcels": [], "labels": {}, "note": None, "weight": 0.0},
]


@pytest.fixture(scope="session")
def avro_kcat() -> str:
    """A kcat built with Avro and JSON support (``KCAT`` names one; Debian's has no Avro)."""
    for candidate in (os.environ.get("KCAT"), shutil.which("kcat"), shutil.which("kafkacat")):
        if candidate and shutil.which(candidate):
            version = subprocess.run([candidate, "-V"], capture_output=True, text=True,
                                     timeout=10, check=False).stdout
            if "Avro" in version and "JSON" in version:
                return candidate
    pytest.skip("no kcat with Avro support (Debian's kcat is built without libserdes): build "
                "kcat with libserdes and edenhill's yajl, then set KCAT=/path/to/kcat")


async def write_with_netscript(bootstrap: str, url: str, topic: str) -> None:
    settings = Settings.from_env("interop", {"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    async with RegistryClient(url) as registry, Publisher(settings) as publisher:
        await registry.register(f"{topic}-value", EVENT)
        codec = AvroCodec(registry)
        for value in SENT:
            await publisher.publish(topic, await codec.encode(f"{topic}-value", value),
                                    key=str(value["id"]).encode())


@pytest.mark.requires_kcat
async def test_kcat_decodes_what_netscript_wrote(
    broker: Broker, registry_server: RunningServer, topic: str, avro_kcat: str,
) -> None:
    """kcat -s value=avro -r <registry> -J prints the values NetScript encoded."""
    await write_with_netscript(broker.bootstrap_servers, registry_server.url, topic)
    process = await asyncio.create_subprocess_exec(
        avro_kcat, "-C", "-b", broker.bootstrap_servers, "-t", topic, "-s", "value=avro",
        "-r", registry_server.url, "-e", "-J",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    if b"lacks support for emitting JSON" in err:
        pytest.skip("this kcat's yajl lacks yajl_gen_verbatim; build it with edenhill's yajl")
    assert process.returncode == 0, err.decode()
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert [(r["key"], r["value_schema_id"]) for r in records] == [("1", 1), ("2", 1)]
    # kcat prints Avro's JSON encoding, where a non-null union value names its branch.
    assert records[0]["payload"] == {**SENT[0], "note": {"string": "fragile"}}
    assert records[1]["payload"] == SENT[1]


async def test_confluent_kafka_serdes_interoperate_both_ways(
    broker: Broker, registry_server: RunningServer, topic: str,
) -> None:
    """confluent-kafka's AvroSerializer registers and writes; each side decodes the other's."""
    pytest.importorskip("authlib", reason="pip install 'confluent-kafka[avro]'")
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    bootstrap, url = broker.bootstrap_servers, registry_server.url
    context = SerializationContext(topic, MessageField.VALUE)
    theirs = {"id": 3, "carrier": "DHL", "parcels": [7], "labels": {"x": "y"}, "note": "c",
              "weight": 1.25}

    def produce_with_confluent() -> None:
        with SchemaRegistryClient({"url": url}) as client:
            serializer = AvroSerializer(client, json.dumps(EVENT))
            producer = Producer({"bootstrap.servers": bootstrap})
            producer.produce(topic, key=b"3", value=serializer(theirs, context))
            assert producer.flush(30) == 0

    def consume_with_confluent(count: int) -> list[Any]:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, 0, 0)])
        values: list[Any] = []
        deadline = time.monotonic() + 30
        try:
            with SchemaRegistryClient({"url": url}) as client:
                deserializer = AvroDeserializer(client)
                while len(values) < count and time.monotonic() < deadline:
                    message = consumer.poll(0.5)
                    if message is None or message.error():
                        continue
                    values.append(deserializer(message.value(), context))
        finally:
            consumer.close()
        return values

    # The in-process broker and registry serve on this loop: blocking clients run in threads.
    await asyncio.to_thread(produce_with_confluent)
    await write_with_netscript(bootstrap, url, topic)
    assert await asyncio.to_thread(consume_with_confluent, 3) == [theirs, *SENT]

    async with RegistryClient(url) as registry:
        codec = AvroCodec(registry)
        assert (await registry.latest(f"{topic}-value")).schema_id == 1
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition as Partition

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            consumer.assign([Partition(topic, 0)])
            await consumer.seek_to_beginning()
            first = await consumer.getone()
        finally:
            await consumer.stop()
        assert await codec.decode(first.value) == theirs
