"""The registry's state lives on the log: a new registry on the same log has all of it."""

from __future__ import annotations

import json

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.kernel.testing import serve_app
from services.log import Broker
from services.registry import CompatibilityLevel, SchemaRegistry, StoreError
from tests.registry.conftest import V1_JSON, body, record, registry_app

USER = record("User", {"name": "id", "type": "long"})
USER_V2 = record("User", {"name": "id", "type": "long"},
                 {"name": "email", "type": ["null", "string"], "default": None})
GONE = record("Gone", {"name": "x", "type": "int"})


async def test_state_survives_a_restart_of_the_registry(broker: Broker) -> None:
    """Subjects, versions, ids, levels and deletions come back; ids are not reused."""
    headers = {"Content-Type": V1_JSON}
    async with (
        serve_app(registry_app(broker.bootstrap_servers)) as server,
        httpx.AsyncClient(base_url=server.url, headers=headers) as api,
    ):
        for subject, schema in (("users-value", USER), ("users-value", USER_V2),
                                ("gone-value", GONE)):
            assert (await api.post(f"/subjects/{subject}/versions",
                                   json=body(schema))).status_code == 200
        await api.put("/config", json={"compatibility": "FULL"})
        await api.put("/config/users-value", json={"compatibility": "NONE"})
        await api.delete("/subjects/users-value/versions/1")
        await api.delete("/subjects/gone-value")
        await api.delete("/subjects/gone-value", params={"permanent": "true"})

    async with (
        serve_app(registry_app(broker.bootstrap_servers)) as server,
        httpx.AsyncClient(base_url=server.url, headers=headers) as api,
    ):
        assert (await api.get("/subjects", params={"deleted": "true"})).json() == ["users-value"]
        assert (await api.get("/subjects/users-value/versions")).json() == [2]
        first = await api.get("/subjects/users-value/versions/1", params={"deleted": "true"})
        assert first.json()["id"] == 1
        latest = (await api.get("/subjects/users-value/versions/latest")).json()
        assert (latest["version"], latest["id"], json.loads(latest["schema"])) == (2, 2, USER_V2)
        assert (await api.get("/config")).json() == {"compatibilityLevel": "FULL"}
        assert (await api.get("/config/users-value")).json() == {"compatibilityLevel": "NONE"}
        assert (await api.get("/schemas/ids/3")).status_code == 404
        fresh = await api.post("/subjects/new-value/versions",
                               json=body(record("New", {"name": "y", "type": "int"})))
        assert fresh.json() == {"id": 4}
        again = await api.post("/subjects/users-value/versions", json=body(USER_V2))
        assert again.json() == {"id": 2}


async def test_registry_topic_is_compacted_and_configurable(broker: Broker) -> None:
    """The state topic is created compacted under the configured name."""
    async with (
        serve_app(registry_app(broker.bootstrap_servers, topic="_my_schemas")) as server,
        httpx.AsyncClient(base_url=server.url, headers={"Content-Type": V1_JSON}) as api,
    ):
        assert (await api.post("/subjects/s/versions", json=body(USER))).status_code == 200
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "_my_schemas")])
    finally:
        await admin.close()
    entries = {entry[0]: entry[1] for entry in described[0].resources[0][4]}
    assert entries["cleanup.policy"] == "compact"


async def test_replay_reads_confluents_layout_and_refuses_foreign_records(broker: Broker) -> None:
    """Records in Confluent's _schemas layout load (other key types ignored); garbage fails."""
    schema = json.dumps(USER, separators=(",", ":"))
    records = [
        ({"keytype": "SCHEMA", "subject": "users-value", "version": 1, "magic": 1},
         {"subject": "users-value", "version": 1, "id": 7, "schema": schema, "deleted": False}),
        ({"keytype": "CONFIG", "subject": "users-value", "magic": 0},
         {"compatibilityLevel": "FULL"}),
        ({"keytype": "MODE", "subject": None, "magic": 0}, {"mode": "READWRITE"}),
        ({"keytype": "NOOP", "magic": 0}, None),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(
                "_schemas", None if value is None else json.dumps(value).encode(),
                key=json.dumps(key).encode())
        async with SchemaRegistry.open(broker.bootstrap_servers) as registry:
            assert registry.version("users-value", "latest").schema_id == 7
            assert registry.compatibility("users-value") is CompatibilityLevel.FULL
            assert await registry.register("other-value", GONE) == 8
        await producer.send_and_wait("_schemas", b"not json", key=b"not json either")
    finally:
        await producer.stop()
    with pytest.raises(StoreError, match="record 5 of '_schemas'"):
        async with SchemaRegistry.open(broker.bootstrap_servers):
            pass
