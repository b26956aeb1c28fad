"""Handlers of DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.

Topic configs live in the catalog; broker configs are the static settings with the dynamic
overrides of ``_dynamic_config`` on top (this node's over the cluster default's). A BROKER
resource is named by this node's id, or "" for the cluster-wide default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.log._codec import Fields
from services.log._config import TOPIC_CONFIG_KEYS
from services.log._dynamic_config import (
    BROKER_KEY_OF_TOPIC,
    CLUSTER_DEFAULT,
    DYNAMIC_KEYS,
    LIST_KEYS,
    check,
)
from services.log._errors import ErrorCode, KafkaError
from services.log._server import RequestContext

if TYPE_CHECKING:
    from services.log._broker import Broker

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
# Kafka's ConfigSource.
SOURCE_DYNAMIC_TOPIC = 1
SOURCE_DYNAMIC_BROKER = 2
SOURCE_DYNAMIC_DEFAULT_BROKER = 3
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
# Password-typed configs: described with a null value, as Kafka does.
SENSITIVE_KEYS = frozenset(
    {"ssl.keystore.password", "ssl.key.password", "ssl.truststore.password", "ssl.keystore.key"}
    | {"sasl.jaas.config"}
)

# (value, source) of one described config.
Described = dict[str, tuple[str, int]]


def _broker_scope(broker: Broker, name: str) -> str:
    """The dynamic-config scope a BROKER resource name stands for."""
    if name in (CLUSTER_DEFAULT, str(broker.node_id)):
        return name
    if not name.isdigit():
        raise KafkaError(
            ErrorCode.INVALID_REQUEST, f"broker resource name {name!r} is not a node id"
        )
    raise KafkaError(
        ErrorCode.INVALID_REQUEST,
        f"broker {name} is not in this cluster: its one node is {broker.node_id}",
    )


def _static_broker_configs(broker: Broker) -> dict[str, str]:
    config = broker.config
    values = {
        "broker.id": str(broker.node_id),
        "node.id": str(broker.node_id),
        "auto.create.topics.enable": str(config.auto_create_topics).lower(),
        "num.partitions": str(config.default_partitions),
        "group.initial.rebalance.delay.ms": str(config.group_initial_rebalance_delay_ms),
        "group.min.session.timeout.ms": str(config.group_min_session_timeout_ms),
        "group.max.session.timeout.ms": str(config.group_max_session_timeout_ms),
        "transaction.max.timeout.ms": str(config.transaction_max_timeout_ms),
    }
    for key, value in config.topic_defaults.to_kafka().items():
        if key in BROKER_KEY_OF_TOPIC:
            values[BROKER_KEY_OF_TOPIC[key]] = value
    return values


def _describe_broker(broker: Broker, scope: str) -> Described:
    default = broker.dynamic_configs.overrides(CLUSTER_DEFAULT)
    described = {key: (value, SOURCE_DYNAMIC_DEFAULT_BROKER) for key, value in default.items()}
    if scope == CLUSTER_DEFAULT:
        return described
    values = {
        key: (value, SOURCE_STATIC_BROKER) for key, value in _static_broker_configs(broker).items()
    }
    values.update(described)
    for key, value in broker.dynamic_configs.overrides(scope).items():
        values[key] = (value, SOURCE_DYNAMIC_BROKER)
    return values


def _describe_topic(broker: Broker, name: str) -> Described:
    topic = broker.catalog.get(name)
    default = broker.dynamic_configs.overrides(CLUSTER_DEFAULT)
    own = broker.dynamic_configs.overrides(str(broker.node_id))
    values: Described = {}
    for key, value in topic.config.to_kafka().items():
        broker_key = BROKER_KEY_OF_TOPIC.get(key, "")
        if key in topic.overrides:
            source = SOURCE_DYNAMIC_TOPIC
        elif broker_key in own:
            source = SOURCE_DYNAMIC_BROKER
        elif broker_key in default:
            source = SOURCE_DYNAMIC_DEFAULT_BROKER
        else:
            source = SOURCE_DEFAULT
        values[key] = (value, source)
    return values


async def describe_configs(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    results = []
    for resource in req["resources"]:
        kind, name = resource["resource_type"], resource["resource_name"]
        result: Fields = {
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "resource_type": kind,
            "resource_name": name,
            "config_entries": [],
        }
        try:
            if kind == RESOURCE_TOPIC:
                values = _describe_topic(broker, name)
            elif kind == RESOURCE_BROKER:
                values = _describe_broker(broker, _broker_scope(broker, name))
            else:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "only topic and broker configs exist")
            wanted = resource["config_names"]
            for key, (value, source) in sorted(values.items()):
                if wanted is not None and key not in wanted:
                    continue
                sensitive = key in SENSITIVE_KEYS
                result["config_entries"].append(
                    {
                        "config_names": key,
                        "config_value": None if sensitive else value,
                        "read_only": kind == RESOURCE_BROKER and key not in DYNAMIC_KEYS,
                        "is_default": source == SOURCE_DEFAULT,
                        "config_source": source,
                        "is_sensitive": sensitive,
                        "config_synonyms": [],
                    }
                )
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message or None)
        results.append(result)
    return {"throttle_time_ms": 0, "resources": results}


def _alter_broker(broker: Broker, name: str, configs: dict[str, str], validate_only: bool) -> None:
    scope = _broker_scope(broker, name)
    check(scope, configs, broker.config.topic_defaults)
    if not validate_only:
        broker.dynamic_configs.replace(scope, configs)
        broker.apply_dynamic_configs()


def _resource_result(resource: Fields) -> Fields:
    return {
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "resource_type": resource["resource_type"],
        "resource_name": resource["resource_name"],
    }


async def alter_configs(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    """AlterConfigs replaces every dynamic config of each resource with the ones given."""
    results = []
    validate_only = bool(req["validate_only"])
    for resource in req["resources"]:
        result = _resource_result(resource)
        try:
            changes = {e["config_name"]: e["config_value"] for e in resource["config_entries"]}
            if resource["resource_type"] == RESOURCE_TOPIC:
                broker.catalog.alter(
                    resource["resource_name"],
                    changes,
                    replace_all=True,
                    validate_only=validate_only,
                )
            elif resource["resource_type"] == RESOURCE_BROKER:
                configs = {k: v for k, v in changes.items() if v is not None}
                _alter_broker(broker, resource["resource_name"], configs, validate_only)
            else:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "only topic and broker configs exist")
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message or None)
        results.append(result)
    return {"throttle_time_ms": 0, "resources": results}


def _incremental_topic(broker: Broker, name: str, ops: list[Fields], validate_only: bool) -> None:
    topic = broker.catalog.get(name)
    changes: dict[str, str | None] = {}
    for entry in ops:
        key, op, value = entry["name"], entry["config_operation"], entry["value"]
        if key not in TOPIC_CONFIG_KEYS:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"unknown topic config {key!r}")
        if op == OP_SET:
            changes[key] = value
        elif op == OP_DELETE:
            changes[key] = None
        elif op in (OP_APPEND, OP_SUBTRACT) and key == "cleanup.policy":
            current = set(topic.config.cleanup_policy.split(","))
            items = {v.strip() for v in (value or "").split(",") if v.strip()}
            current = current | items if op == OP_APPEND else current - items
            changes[key] = ",".join(sorted(current))
        else:
            raise KafkaError(
                ErrorCode.INVALID_CONFIG,
                f"operation {op} applies only to list configs, and {key} is not one",
            )
    broker.catalog.alter(name, changes, validate_only=validate_only)


def _incremental_broker(broker: Broker, name: str, ops: list[Fields], validate_only: bool) -> None:
    scope = _broker_scope(broker, name)
    configs = broker.dynamic_configs.overrides(scope)
    effective = {key: value for key, (value, _) in _describe_broker(broker, scope).items()}
    for entry in ops:
        key, op, value = entry["name"], entry["config_operation"], entry["value"]
        if op == OP_SET:
            configs[key] = value or ""
        elif op == OP_DELETE:
            configs.pop(key, None)
        elif op in (OP_APPEND, OP_SUBTRACT) and key in LIST_KEYS:
            current = configs.get(key, effective.get(key, ""))
            items = [v.strip() for v in current.split(",") if v.strip()]
            given = [v.strip() for v in (value or "").split(",") if v.strip()]
            if op == OP_APPEND:
                items += [v for v in given if v not in items]
            else:
                items = [v for v in items if v not in given]
            configs[key] = ",".join(items)
        else:
            raise KafkaError(
                ErrorCode.INVALID_CONFIG,
                f"operation {op} applies only to list configs, and {key} is not one",
            )
    _alter_broker(broker, name, configs, validate_only)


async def incremental_alter_configs(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    results = []
    validate_only = bool(req["validate_only"])
    for resource in req["resources"]:
        result = _resource_result(resource)
        try:
            name, ops = resource["resource_name"], resource["configs"]
            if resource["resource_type"] == RESOURCE_TOPIC:
                _incremental_topic(broker, name, ops, validate_only)
            elif resource["resource_type"] == RESOURCE_BROKER:
                _incremental_broker(broker, name, ops, validate_only)
            else:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "only topic and broker configs exist")
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message or None)
        results.append(result)
    return {"throttle_time_ms": 0, "responses": results}
