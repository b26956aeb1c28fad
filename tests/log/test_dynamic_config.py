"""Dynamic broker configs: AlterConfigs and IncrementalAlterConfigs on BROKER resources."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)

from services.log._apis import ApiKey
from services.log.testing import BrokerProcess
from tests.log._raw import call

SET, APPEND, DELETE = AlterConfigOpType.SET, AlterConfigOpType.APPEND, AlterConfigOpType.DELETE


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker process of its own: these configs change every topic, and it can be killed."""
    with BrokerProcess(tmp_path / "data") as process:
        yield process


def _incremental(admin: AdminClient, name: str, *changes: tuple[str, str | None, object]) -> None:
    resource = ConfigResource(
        ResourceType.BROKER,
        name,
        incremental_configs=[
            ConfigEntry(key, value, incremental_operation=op) for key, value, op in changes
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(30)


def _described(admin: AdminClient, kind: ResourceType, name: str) -> dict[str, tuple[str, str]]:
    resource = ConfigResource(kind, name)
    entries = admin.describe_configs([resource])[resource].result(30)
    return {key: (e.value, ConfigSource(e.source).name) for key, e in entries.items()}


def test_broker_topic_defaults_reach_topics_and_survive_a_crash(broker: BrokerProcess) -> None:
    """log.cleanup.policy set on the broker applies to topics without their own value."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    for future in admin.create_topics(
        [NewTopic("plain", 1, 1), NewTopic("own", 1, 1, config={"cleanup.policy": "delete"})]
    ).values():
        future.result(30)
    _incremental(
        admin, "0", ("background.threads", "9", SET), ("log.cleanup.policy", "compact", APPEND)
    )
    broker.kill()
    broker.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    node = _described(admin, ResourceType.BROKER, "0")
    assert node["background.threads"] == ("9", "DYNAMIC_BROKER_CONFIG")
    assert node["log.cleanup.policy"] == ("delete,compact", "DYNAMIC_BROKER_CONFIG")
    assert node["auto.create.topics.enable"][1] == "STATIC_BROKER_CONFIG"
    plain = _described(admin, ResourceType.TOPIC, "plain")
    assert plain["cleanup.policy"] == ("compact,delete", "DYNAMIC_BROKER_CONFIG")
    assert _described(admin, ResourceType.TOPIC, "own")["cleanup.policy"] == (
        "delete",
        "DYNAMIC_TOPIC_CONFIG",
    )
    _incremental(admin, "0", ("log.cleanup.policy", None, DELETE))
    assert _described(admin, ResourceType.TOPIC, "plain")["cleanup.policy"] == (
        "delete",
        "DEFAULT_CONFIG",
    )


def _raw_set(bootstrap: str, name: str, key: str, value: str) -> int:
    """IncrementalAlterConfigs SET on a broker resource confluent-kafka's client cannot send
    (the cluster default "", or a node that does not exist); returns the error code."""
    response = call(
        bootstrap,
        ApiKey.INCREMENTAL_ALTER_CONFIGS,
        0,
        {
            "resources": [
                {
                    "resource_type": 4,
                    "resource_name": name,
                    "configs": [{"name": key, "config_operation": 0, "value": value}],
                }
            ],
            "validate_only": False,
        },
    )
    code: int = response["responses"][0]["error_code"]
    return code


def test_this_node_overrides_the_cluster_default(broker: BrokerProcess) -> None:
    """A value set for node 0 wins over the cluster-wide default (resource name "")."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic("t", 1, 1)])["t"].result(30)
    assert _raw_set(broker.bootstrap_servers, "", "log.retention.ms", "60000") == 0
    described = call(
        broker.bootstrap_servers,
        ApiKey.DESCRIBE_CONFIGS,
        1,
        {
            "resources": [{"resource_type": 4, "resource_name": "", "config_names": None}],
            "include_synonyms": False,
        },
    )
    (entry,) = described["resources"][0]["config_entries"]
    assert (entry["config_names"], entry["config_value"], entry["config_source"]) == (
        "log.retention.ms",
        "60000",
        ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value,
    )
    topic = _described(admin, ResourceType.TOPIC, "t")
    assert topic["retention.ms"] == ("60000", "DYNAMIC_DEFAULT_BROKER_CONFIG")
    _incremental(admin, "0", ("log.retention.ms", "120000", SET))
    assert _described(admin, ResourceType.TOPIC, "t")["retention.ms"] == (
        "120000",
        "DYNAMIC_BROKER_CONFIG",
    )
    node = _described(admin, ResourceType.BROKER, "0")
    assert node["log.retention.ms"] == ("120000", "DYNAMIC_BROKER_CONFIG")


def test_per_broker_configs_and_other_nodes_are_refused(broker: BrokerProcess) -> None:
    """Listener and SASL configs need a broker id, as in Kafka; node 3 does not exist."""
    code = _raw_set(broker.bootstrap_servers, "", "sasl.kerberos.min.time.before.relogin", "58000")
    assert code == KafkaError.INVALID_REQUEST
    assert _raw_set(broker.bootstrap_servers, "3", "background.threads", "4") == (
        KafkaError.INVALID_REQUEST
    )


@pytest.mark.parametrize(
    ("name", "key", "value", "code"),
    [
        ("0", "broker.id", "7", KafkaError.INVALID_REQUEST),
        ("0", "log.retention.ms", "soon", KafkaError.INVALID_CONFIG),
    ],
)
def test_configs_a_broker_cannot_take_are_refused(
    broker: BrokerProcess, name: str, key: str, value: str, code: int
) -> None:
    """Static keys and bad values are refused."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    with pytest.raises(KafkaException) as failed:
        _incremental(admin, name, (key, value, SET))
    assert failed.value.args[0].code() == code


def test_alter_configs_replaces_every_dynamic_broker_config(broker: BrokerProcess) -> None:
    """Legacy AlterConfigs on a broker keeps exactly the configs it names."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    _incremental(admin, "0", ("background.threads", "9", SET))
    resource = ConfigResource(ResourceType.BROKER, "0", set_config={"num.io.threads": "4"})
    with pytest.warns(DeprecationWarning, match="alter_configs has been deprecated"):
        altered = admin.alter_configs([resource])
    altered[resource].result(30)
    node = _described(admin, ResourceType.BROKER, "0")
    assert node["num.io.threads"] == ("4", "DYNAMIC_BROKER_CONFIG")
    assert "background.threads" not in node
