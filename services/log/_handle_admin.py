"""Handlers of topic administration: create, delete and grow topics.

Their configs are handled in ``_handle_configs``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from services.log._codec import Fields
from services.log._errors import ErrorCode, KafkaError
from services.log._server import RequestContext

if TYPE_CHECKING:
    from services.log._broker import Broker

log = logging.getLogger("netscript.log")


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
