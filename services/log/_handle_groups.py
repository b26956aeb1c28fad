"""Handlers of consumer groups and committed offsets; the logic is in ``GroupCoordinator``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.log._acls import ResourceType, authorized_operations
from services.log._codec import Fields
from services.log._errors import ErrorCode, KafkaError
from services.log._server import RequestContext

if TYPE_CHECKING:
    from services.log._broker import Broker

COORDINATOR_GROUP = 0
COORDINATOR_TRANSACTION = 1
CLASSIC_GROUP_TYPE = "classic"


async def find_coordinator(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    # A single node coordinates every group and every transactional id.
    host, port = broker.advertised_address
    key_type = req.get("coordinator_type", COORDINATOR_GROUP)
    if key_type not in (COORDINATOR_GROUP, COORDINATOR_TRANSACTION):
        return {"error_code": ErrorCode.INVALID_REQUEST, "error_message": "unknown key type"}
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "coordinator_id": broker.node_id,
        "host": host,
        "port": port,
    }


async def join_group(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    session_timeout = req["session_timeout"]
    result = await broker.groups.join(
        group_id=req["group"],
        member_id=req["member_id"] or "",
        group_instance_id=req.get("group_instance_id"),
        protocol_type=req["protocol_type"],
        protocols=[(p["protocol_name"], p["protocol_metadata"]) for p in req["group_protocols"]],
        session_timeout_ms=session_timeout,
        # v0 has no rebalance timeout: Kafka uses the session timeout for it.
        rebalance_timeout_ms=int(req.get("rebalance_timeout") or session_timeout),
        client_id=ctx.client_id,
        client_host=ctx.client_host,
        require_known_member_id=ctx.api_version >= 4,
    )
    return {
        "throttle_time_ms": 0,
        "error_code": result.error,
        "generation_id": result.generation_id,
        "group_protocol": result.protocol_name,
        "leader_id": result.leader_id,
        "member_id": result.member_id,
        "members": [
            {"member_id": member, "group_instance_id": instance, "member_metadata": meta}
            for member, instance, meta in result.members
        ],
    }


async def sync_group(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    error, assignment = await broker.groups.sync(
        group_id=req["group"],
        generation_id=req["generation_id"],
        member_id=req["member_id"],
        group_instance_id=req.get("group_instance_id"),
        assignments=[(a["member_id"], a["member_metadata"]) for a in req["group_assignment"]],
    )
    return {"throttle_time_ms": 0, "error_code": error, "member_assignment": assignment}


async def heartbeat(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    error = broker.groups.heartbeat(
        group_id=req["group"],
        generation_id=req["generation_id"],
        member_id=req["member_id"],
        group_instance_id=req.get("group_instance_id"),
    )
    return {"throttle_time_ms": 0, "error_code": error}


async def leave_group(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    error = broker.groups.leave(group_id=req["group"], member_id=req["member_id"])
    return {"throttle_time_ms": 0, "error_code": error}


async def describe_groups(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    operations = authorized_operations(
        ResourceType.GROUP, requested=bool(req.get("include_authorized_operations"))
    )
    groups = []
    for group_id in req["groups"]:
        described = broker.groups.describe(group_id)
        groups.append(
            {
                "error_code": described.error,
                "group": group_id,
                "state": described.state,
                "protocol_type": described.protocol_type,
                "protocol": described.protocol,
                "members": [
                    {
                        "member_id": m.member_id,
                        "group_instance_id": m.group_instance_id,
                        "client_id": m.client_id,
                        "client_host": m.client_host,
                        "member_metadata": m.metadata,
                        "member_assignment": m.assignment,
                    }
                    for m in described.members
                ],
                "authorized_operations": operations,
            }
        )
    return {"throttle_time_ms": 0, "groups": groups}


async def list_groups(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    # Filters (v4+, v5+) match case-insensitively, as Kafka's group coordinator does; every
    # group here speaks the classic protocol.
    states = {s.lower() for s in req.get("states_filter") or []}
    types = {t.lower() for t in req.get("types_filter") or []}
    if types and CLASSIC_GROUP_TYPE not in types:
        return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "groups": []}
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "groups": [
            {
                "group": group_id,
                "protocol_type": protocol_type,
                "group_state": state,
                "group_type": CLASSIC_GROUP_TYPE,
            }
            for group_id, protocol_type, state in broker.groups.list_groups()
            if not states or state.lower() in states
        ],
    }


async def delete_groups(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    results = []
    for group_id in req["groups_names"]:
        results.append({"group_id": group_id, "error_code": broker.groups.delete(group_id)})
    return {"throttle_time_ms": 0, "results": results}


async def offset_delete(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    errors: dict[tuple[str, int], ErrorCode] = {}
    known: list[tuple[str, int]] = []
    for t in req["topics"]:
        for p in t["partitions"]:
            key = (t["name"], p["partition_index"])
            try:
                broker.catalog.partition(*key)
                known.append(key)
            except KafkaError as exc:
                errors[key] = exc.code  # Kafka answers unknown partitions before the group
    group_error, deleted = broker.groups.delete_offsets(req["group_id"], known)
    if group_error is not ErrorCode.NONE:
        return {"error_code": group_error, "throttle_time_ms": 0, "topics": []}
    errors.update(deleted)
    return {
        "error_code": ErrorCode.NONE,
        "throttle_time_ms": 0,
        "topics": [
            {
                "name": t["name"],
                "partitions": [
                    {
                        "partition_index": p["partition_index"],
                        "error_code": errors[(t["name"], p["partition_index"])],
                    }
                    for p in t["partitions"]
                ],
            }
            for t in req["topics"]
        ],
    }


async def offset_commit(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    errors: dict[tuple[str, int], ErrorCode] = {}
    offsets: dict[tuple[str, int], tuple[int, str, int]] = {}
    for t in req["topics"]:
        for p in t["partitions"]:
            key = (t["topic"], p["partition"])
            try:
                broker.catalog.partition(*key)
            except KafkaError as exc:
                errors[key] = exc.code  # Kafka refuses offsets for partitions it does not have
                continue
            offsets[key] = (
                p["offset"],
                p["metadata"] or "",
                p.get("committed_leader_epoch", -1),
            )
    if offsets:
        error = broker.groups.commit_offsets(
            group_id=req["consumer_group"],
            generation_id=req["consumer_group_generation_id"],
            member_id=req["consumer_id"],
            offsets=offsets,
            group_instance_id=req.get("group_instance_id"),
        )
        errors.update(dict.fromkeys(offsets, error))
    return {
        "throttle_time_ms": 0,
        "topics": [
            {
                "topic": t["topic"],
                "partitions": [
                    {
                        "partition": p["partition"],
                        "error_code": errors[(t["topic"], p["partition"])],
                    }
                    for p in t["partitions"]
                ],
            }
            for t in req["topics"]
        ],
    }


async def offset_fetch(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    wanted = req["topics"]
    partitions = (
        None if wanted is None else [(t["topic"], p) for t in wanted for p in t["partitions"]]
    )
    found = broker.groups.fetch_offsets(group_id=req["consumer_group"], partitions=partitions)
    by_topic: dict[str, list[Fields]] = {}
    for (topic, partition), (offset, meta, epoch) in sorted(found.items()):
        by_topic.setdefault(topic, []).append(
            {
                "partition": partition,
                "offset": offset,
                "committed_leader_epoch": epoch,
                "metadata": meta,
                "error_code": ErrorCode.NONE,
            }
        )
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "topics": [{"topic": t, "partitions": parts} for t, parts in by_topic.items()],
    }
