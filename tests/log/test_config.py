"""Topic configs: the ones the broker applies, the ones it only records, the ones it refuses."""

from __future__ import annotations

import pytest

from services.log import ErrorCode, KafkaError, TopicConfig


def test_applied_configs_are_parsed_and_reported() -> None:
    """Kafka-named settings become typed fields and come back as Kafka strings."""
    config = TopicConfig().with_kafka({"cleanup.policy": "delete,compact", "retention.ms": "5"})
    assert config.compact
    assert config.delete
    assert config.retention_ms == 5
    assert config.to_kafka()["cleanup.policy"] == "compact,delete"


def test_kafka_configs_without_effect_are_accepted_and_reported() -> None:
    """min.insync.replicas & co. are kept and described, and can be deleted again."""
    config = TopicConfig().with_kafka({"min.insync.replicas": "2"})
    assert config.to_kafka()["min.insync.replicas"] == "2"
    assert "min.insync.replicas" not in config.with_kafka({"min.insync.replicas": None}).to_kafka()


@pytest.mark.parametrize(
    ("key", "value"),
    [("no.such.config", "1"), ("retention.ms", "soon"), ("cleanup.policy", "forever")],
)
def test_bad_configs_are_refused_naming_the_key(key: str, value: str) -> None:
    """Unknown keys and malformed values are INVALID_CONFIG with the key in the message."""
    with pytest.raises(KafkaError) as refused:
        TopicConfig().with_kafka({key: value})
    assert refused.value.code == ErrorCode.INVALID_CONFIG
    assert key in str(refused.value)


def test_broker_settings_come_from_the_environment_and_flags_win() -> None:
    """NETSCRIPT_LOG_* variables configure the broker; explicit values override them."""
    from pathlib import Path

    from services.log import BrokerConfig

    env = {
        "NETSCRIPT_LOG_PORT": "19999",
        "NETSCRIPT_LOG_DATA_DIR": "/var/lib/log",
        "NETSCRIPT_LOG_AUTO_CREATE_TOPICS": "false",
        "NETSCRIPT_LOG_DEFAULT_PARTITIONS": "3",
    }
    config = BrokerConfig.from_env(env)
    assert config.port == 19999
    assert config.data_dir == Path("/var/lib/log")
    assert config.auto_create_topics is False
    assert config.default_partitions == 3
    assert BrokerConfig.from_env(env, port=1234).port == 1234
