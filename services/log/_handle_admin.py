"""Handlers of cluster metadata and administration: ApiVersions, Metadata, topics, configs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from services.log._apis import API_VERSIONS
from services.log._codec import Fields
from services.log._config import TOPIC_CONFIG_KEYS
from services.log._errors import ErrorCode, KafkaError
from services.log._server import RequestContext

if TYPE_CHECKING:
    from services.log._broker import Broker

log = logging.getLogger("netscript.log")

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
SOURCE_DYNAMIC_TOPIC = 1
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3


async def api_versions(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    return {
        "error_code": ErrorCode.NONE,
        "api_versions": [
            {"api_key": int(key), "min_version": low, "max_version": high, "tags": {}}
            for key, (low, high) in sorted(API_VERSIONS.items())
        ],
        "throttle_time_ms": 0,
        "tags": {},
    }


async def metadata(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    requested = req.get("topics")
    if ctx.api_version == 0 and requested == []:
        requested = None  # v0 has no null array: empty means "all topics"
    allow_create = req.get("allow_auto_topic_creation", True)
    node = broker.node_id
    topics = []
    names = [t.name for t in broker.catalog] if requested is None else list(requested)
    for name in names:
        entry: Fields = {"error_code": ErrorCode.NONE, "topic": name, "is_internal": False}
        try:
            broker.ensure_topic(name, allow_create=allow_create)
            topic = broker.catalog.get(name)
            entry["partitions"] = [
                {
                    "error_code": ErrorCode.NONE,
                    "partition": p,
                    "leader": node,
                    "replicas": [node],
                    "isr": [node],
                    "offline_replicas": [],
                }
                for p in range(len(topic.partitions))
            ]
        except KafkaError as exc:
            entry.update(error_code=exc.code, partitions=[])
        topics.append(entry)
    host, port = broker.advertised_address
    return {
        "throttle_time_ms": 0,
        "brokers": [{"node_id": node, "host": host, "port": port, "rack": None}],
        "cluster_id": broker.config.cluster_id,
        "controller_id": node,
        "topics": topics,
    }


async def create_topics(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    results = []
    for spec in req["create_topic_requests"]:
        name = spec["topic"]
        result: Fields = {"topic": name, "error_code": ErrorCode.NONE, "error_message": None}
        try:
            count = spec["num_partitions"]
            if spec["replica_assignment"]:
                count = len(spec["replica_assignment"])
            elif count == -1:
                count = broker.config.default_partitions
            factor = spec["replication_factor"]
            if factor == 0 or factor < -1:
                raise KafkaError(
                    ErrorCode.INVALID_REPLICATION_FACTOR,
                    f"replication factor must be positive (or -1 for the default), not {factor}",
                )
            if factor > 1:
                # Topic definitions written for a production cluster (factor 3) must still
                # work on the single-node log; every partition simply has one replica here.
                log.info("topic %r asks for %d replicas; a single node keeps one", name, factor)
            configs = {c["config_key"]: c["config_value"] for c in spec["configs"]}
            broker.catalog.create(
                name, count, configs, validate_only=bool(req.get("validate_only"))
            )
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message or None)
        results.append(result)
    return {"throttle_time_ms": 0, "topic_errors": results}


async def delete_topics(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    results = []
    for name in req["topics"]:
        code = ErrorCode.NONE
        try:
            broker.catalog.delete(name)
        except KafkaError as exc:
            code = exc.code
        results.append({"topic": name, "error_code": code})
    return {"throttle_time_ms": 0, "topic_error_codes": results}


async def create_partitions(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    results = []
    for spec in req["topic_partitions"]:
        result: Fields = {"topic": spec["topic"], "error_code": 0, "error_message": None}
        try:
            broker.catalog.add_partitions(
                spec["topic"],
                spec["new_partitions"]["count"],
                validate_only=bool(req["validate_only"]),
            )
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message or None)
        results.append(result)
    return {"throttle_time_ms": 0, "topic_errors": results}


def _broker_configs(broker: Broker) -> dict[str, str]:
    config = broker.config
    values = {
        "broker.id": str(broker.node_id),
        "auto.create.topics.enable": str(config.auto_create_topics).lower(),
        "num.partitions": str(config.default_partitions),
        "group.initial.rebalance.delay.ms": str(config.group_initial_rebalance_delay_ms),
        "group.min.session.timeout.ms": str(config.group_min_session_timeout_ms),
        "group.max.session.timeout.ms": str(config.group_max_session_timeout_ms),
        "transaction.max.timeout.ms": str(config.transaction_max_timeout_ms),
    }
    for key, value in config.topic_defaults.to_kafka().items():
        values[f"log.{key}" if not key.startswith("log.") else key] = value
    return values


async def describe_configs(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    results = []
    for resource in req["resources"]:
        result: Fields = {
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "resource_type": resource["resource_type"],
            "resource_name": resource["resource_name"],
            "config_entries": [],
        }
        try:
            wanted = resource["config_names"]
            if resource["resource_type"] == RESOURCE_TOPIC:
                topic = broker.catalog.get(resource["resource_name"])
                values = topic.config.to_kafka()
                overridden = set(topic.overrides)
            elif resource["resource_type"] == RESOURCE_BROKER:
                values = _broker_configs(broker)
                overridden = set()
            else:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "only topic and broker configs exist")
            for key, value in sorted(values.items()):
                if wanted is not None and key not in wanted:
                    continue
                is_default = key not in overridden
                source = SOURCE_DEFAULT if is_default else SOURCE_DYNAMIC_TOPIC
                if resource["resource_type"] == RESOURCE_BROKER:
                    source = SOURCE_STATIC_BROKER
                result["config_entries"].append(
                    {
                        "config_names": key,
                        "config_value": value,
                        "read_only": resource["resource_type"] == RESOURCE_BROKER,
                        "is_default": is_default,
                        "config_source": source,
                        "is_sensitive": False,
                        "config_synonyms": [],
                    }
                )
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message or None)
        results.append(result)
    return {"throttle_time_ms": 0, "resources": results}


def _check_topic_resource(resource: Fields) -> None:
    if resource["resource_type"] != RESOURCE_TOPIC:
        raise KafkaError(
            ErrorCode.INVALID_REQUEST, "only topic configs can be altered on this broker"
        )


async def alter_configs(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    results = []
    for resource in req["resources"]:
        result: Fields = {
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "resource_type": resource["resource_type"],
            "resource_name": resource["resource_name"],
        }
        try:
            _check_topic_resource(resource)
            changes = {e["config_name"]: e["config_value"] for e in resource["config_entries"]}
            broker.catalog.alter(
                resource["resource_name"],
                changes,
                replace_all=True,
                validate_only=bool(req["validate_only"]),
            )
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message or None)
        results.append(result)
    return {"throttle_time_ms": 0, "resources": results}


async def incremental_alter_configs(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    results = []
    for resource in req["resources"]:
        result: Fields = {
            "error_code": ErrorCode.NONE,
            "error_message": None,
            "resource_type": resource["resource_type"],
            "resource_name": resource["resource_name"],
        }
        try:
            _check_topic_resource(resource)
            topic = broker.catalog.get(resource["resource_name"])
            changes: dict[str, str | None] = {}
            for entry in resource["configs"]:
                name, op, value = entry["name"], entry["config_operation"], entry["value"]
                if name not in TOPIC_CONFIG_KEYS:
                    raise KafkaError(ErrorCode.INVALID_CONFIG, f"unknown topic config {name!r}")
                if op == OP_SET:
                    changes[name] = value
                elif op == OP_DELETE:
                    changes[name] = None
                elif op in (OP_APPEND, OP_SUBTRACT) and name == "cleanup.policy":
                    current = set(topic.config.cleanup_policy.split(","))
                    items = {v.strip() for v in (value or "").split(",") if v.strip()}
                    current = current | items if op == OP_APPEND else current - items
                    changes[name] = ",".join(sorted(current))
                else:
                    raise KafkaError(
                        ErrorCode.INVALID_CONFIG,
                        f"operation {op} applies only to list configs, and {name} is not one",
                    )
            broker.catalog.alter(
                resource["resource_name"], changes, validate_only=bool(req["validate_only"])
            )
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message or None)
        results.append(result)
    return {"throttle_time_ms": 0, "responses": results}
