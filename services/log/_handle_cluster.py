"""Handlers that describe the cluster: ApiVersions, Metadata and DescribeCluster.

One node leads every partition. Metadata v10+ carries topic ids, and v12 looks topics up by id;
the authorized operations (v8+) are every operation of the resource type, since ACLs are kept
but not enforced (see ``_acls``). Partition leader epochs are 0: leadership never moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.log._acls import ResourceType, authorized_operations
from services.log._apis import API_VERSIONS
from services.log._codec import Fields
from services.log._errors import ErrorCode, KafkaError
from services.log._schemas import Uuid
from services.log._server import RequestContext

if TYPE_CHECKING:
    from services.log._broker import Broker

ENDPOINT_BROKERS = 1
ENDPOINT_CONTROLLERS = 2


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


def _requested_topics(broker: Broker, ctx: RequestContext, req: Fields) -> list[Fields] | None:
    """The topics asked for as ``{"name", "topic_id"}`` (a name of None: an unknown id), or
    None for all of them."""
    requested = req["topics"]
    if requested is None or (ctx.api_version == 0 and requested == []):
        return None  # v0 has no null array: empty means "all topics"
    by_id: dict[bytes, str] | None = None
    topics = []
    for entry in requested:
        name = entry["name"]
        topic_id = entry.get("topic_id", Uuid.ZERO)
        if name is None:  # v12: looked up by id
            if by_id is None:
                by_id = {bytes.fromhex(t.topic_id): t.name for t in broker.catalog}
            name = by_id.get(topic_id)
        topics.append({"name": name, "topic_id": topic_id})
    return topics


async def metadata(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    allow_create = req.get("allow_auto_topic_creation", True)
    topic_ops = authorized_operations(
        ResourceType.TOPIC, requested=bool(req.get("include_topic_authorized_operations"))
    )
    node = broker.node_id
    requested = _requested_topics(broker, ctx, req)
    if requested is None:
        requested = [{"name": t.name, "topic_id": Uuid.ZERO} for t in broker.catalog]
    topics = []
    for wanted in requested:
        name = wanted["name"]
        entry: Fields = {
            "error_code": ErrorCode.NONE,
            "name": name,
            "topic_id": wanted["topic_id"],
            "is_internal": False,
            "partitions": [],
            "topic_authorized_operations": topic_ops,
        }
        if name is None:
            entry["error_code"] = ErrorCode.UNKNOWN_TOPIC_ID
            topics.append(entry)
            continue
        try:
            broker.ensure_topic(name, allow_create=allow_create)
            topic = broker.catalog.get(name)
            entry["topic_id"] = bytes.fromhex(topic.topic_id)
            entry["partitions"] = [
                {
                    "error_code": ErrorCode.NONE,
                    "partition_index": p,
                    "leader_id": node,
                    "leader_epoch": 0,
                    "replica_nodes": [node],
                    "isr_nodes": [node],
                    "offline_replicas": [],
                }
                for p in range(len(topic.partitions))
            ]
        except KafkaError as exc:
            entry.update(error_code=exc.code, topic_id=Uuid.ZERO)
        topics.append(entry)
    host, port = broker.advertised_address
    return {
        "throttle_time_ms": 0,
        "brokers": [{"node_id": node, "host": host, "port": port, "rack": None}],
        "cluster_id": broker.config.cluster_id,
        "controller_id": node,
        "topics": topics,
        "cluster_authorized_operations": authorized_operations(
            ResourceType.CLUSTER,
            requested=bool(req.get("include_cluster_authorized_operations")),
        ),
    }


async def describe_cluster(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    endpoint = req.get("endpoint_type", ENDPOINT_BROKERS)
    response: Fields = {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "endpoint_type": endpoint,
        "cluster_id": broker.config.cluster_id,
        "controller_id": broker.node_id,
        "cluster_authorized_operations": authorized_operations(
            ResourceType.CLUSTER,
            requested=bool(req["include_cluster_authorized_operations"]),
        ),
    }
    if endpoint == ENDPOINT_CONTROLLERS:
        # As a Kafka broker answers: controllers are described by a controller endpoint, and
        # this node's listener is a broker endpoint (it has no separate controller listener).
        response.update(
            error_code=ErrorCode.MISMATCHED_ENDPOINT_TYPE,
            error_message="The request was sent to an endpoint of type BROKER, "
            "but we wanted an endpoint of type CONTROLLER",
        )
        return response
    if endpoint != ENDPOINT_BROKERS:
        response.update(
            error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            error_message=f"unsupported endpoint type {endpoint}",
        )
        return response
    host, port = broker.advertised_address
    response["brokers"] = [{"broker_id": broker.node_id, "host": host, "port": port, "rack": None}]
    return response
