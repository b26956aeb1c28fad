"""Handlers of idempotent and transactional producers; the logic is in the coordinator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.log._codec import Fields
from services.log._errors import ErrorCode, KafkaError
from services.log._server import RequestContext

if TYPE_CHECKING:
    from services.log._broker import Broker


async def init_producer_id(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    try:
        producer_id, epoch = await broker.transactions.init_producer_id(
            req["transactional_id"], req["transaction_timeout_ms"]
        )
    except KafkaError as exc:
        return {
            "throttle_time_ms": 0,
            "error_code": exc.code,
            "producer_id": -1,
            "producer_epoch": -1,
        }
    return {
        "throttle_time_ms": 0,
        "error_code": 0,
        "producer_id": producer_id,
        "producer_epoch": epoch,
    }


async def add_partitions_to_txn(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    wanted = [(t["topic"], p) for t in req["topics"] for p in t["partitions"]]
    try:
        errors = await broker.transactions.add_partitions(
            req["transactional_id"], req["producer_id"], req["producer_epoch"], wanted
        )
    except KafkaError as exc:
        errors = dict.fromkeys(wanted, exc.code)
    by_topic: dict[str, list[Fields]] = {}
    for (topic, partition), code in errors.items():
        by_topic.setdefault(topic, []).append({"partition": partition, "error_code": code})
    return {
        "throttle_time_ms": 0,
        "errors": [{"topic": t, "partition_errors": parts} for t, parts in by_topic.items()],
    }


async def add_offsets_to_txn(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    code = ErrorCode.NONE
    try:
        await broker.transactions.add_offsets(
            req["transactional_id"], req["producer_id"], req["producer_epoch"], req["group_id"]
        )
    except KafkaError as exc:
        code = exc.code
    return {"throttle_time_ms": 0, "error_code": code}


async def end_txn(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    code = ErrorCode.NONE
    try:
        await broker.transactions.end(
            req["transactional_id"],
            req["producer_id"],
            req["producer_epoch"],
            bool(req["transaction_result"]),
        )
    except KafkaError as exc:
        code = exc.code
    return {"throttle_time_ms": 0, "error_code": code}


async def txn_offset_commit(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    offsets = {
        (t["topic"], p["partition"]): (
            p["offset"],
            p["metadata"] or "",
            p.get("committed_leader_epoch", -1),
        )
        for t in req["topics"]
        for p in t["partitions"]
    }
    code = ErrorCode.NONE
    try:
        broker.transactions.stage_offsets(
            req["transactional_id"],
            req["producer_id"],
            req["producer_epoch"],
            req["group_id"],
            offsets,
        )
    except KafkaError as exc:
        code = exc.code
    by_topic: dict[str, list[Fields]] = {}
    for topic, partition in offsets:
        by_topic.setdefault(topic, []).append({"partition": partition, "error_code": code})
    return {
        "throttle_time_ms": 0,
        "errors": [{"topic": t, "partition_errors": parts} for t, parts in by_topic.items()],
    }
