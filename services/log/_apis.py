"""Which Kafka APIs and versions the broker speaks, and their wire schemas.

Schemas come from aiokafka's protocol structs. Versions whose layout is identical to a
neighbour (e.g. JoinGroup v3/v4 = v2) reuse it, and the few schemas aiokafka lacks are written
here with aiokafka's field types. ``API_VERSIONS`` is exactly what ApiVersions advertises: every
entry has a handler and a schema for every version in its range.
"""

from __future__ import annotations

import enum
import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from aiokafka.protocol.api import RequestStruct, Response

from services.log._codec import (
    Array,
    Boolean,
    CompactArray,
    CompactString,
    Int8,
    Int16,
    Int32,
    Int64,
    Schema,
    String,
    TaggedFields,
)


class ApiKey(enum.IntEnum):
    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    INCREMENTAL_ALTER_CONFIGS = 44


# The advertised ranges. They stop where aiokafka's structs stop: the next versions of these
# APIs are "flexible" (compact encodings and tagged fields), which its structs do not decode.
API_VERSIONS: dict[ApiKey, tuple[int, int]] = {
    ApiKey.PRODUCE: (3, 8),
    ApiKey.FETCH: (4, 11),
    ApiKey.LIST_OFFSETS: (0, 5),
    ApiKey.METADATA: (0, 5),
    ApiKey.OFFSET_COMMIT: (2, 7),
    ApiKey.OFFSET_FETCH: (1, 5),
    ApiKey.FIND_COORDINATOR: (0, 1),
    ApiKey.JOIN_GROUP: (0, 5),
    ApiKey.HEARTBEAT: (0, 3),
    ApiKey.LEAVE_GROUP: (0, 1),
    ApiKey.SYNC_GROUP: (0, 3),
    ApiKey.DESCRIBE_GROUPS: (0, 3),
    ApiKey.LIST_GROUPS: (0, 2),
    ApiKey.API_VERSIONS: (0, 3),
    ApiKey.CREATE_TOPICS: (0, 4),
    ApiKey.DELETE_TOPICS: (0, 3),
    ApiKey.DELETE_RECORDS: (0, 1),
    ApiKey.INIT_PRODUCER_ID: (0, 1),
    ApiKey.ADD_PARTITIONS_TO_TXN: (0, 1),
    ApiKey.ADD_OFFSETS_TO_TXN: (0, 1),
    ApiKey.END_TXN: (0, 1),
    ApiKey.TXN_OFFSET_COMMIT: (0, 2),
    ApiKey.DESCRIBE_CONFIGS: (0, 2),
    ApiKey.ALTER_CONFIGS: (0, 1),
    ApiKey.CREATE_PARTITIONS: (0, 1),
    ApiKey.DELETE_GROUPS: (0, 1),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: (0, 0),
}

# (api, version) -> (api, version) whose layout it shares, per Kafka's message definitions.
_SAME_AS: dict[tuple[ApiKey, int], tuple[ApiKey, int]] = {
    (ApiKey.JOIN_GROUP, 3): (ApiKey.JOIN_GROUP, 2),
    (ApiKey.JOIN_GROUP, 4): (ApiKey.JOIN_GROUP, 2),
    (ApiKey.SYNC_GROUP, 2): (ApiKey.SYNC_GROUP, 1),
    (ApiKey.HEARTBEAT, 2): (ApiKey.HEARTBEAT, 1),
    (ApiKey.OFFSET_COMMIT, 4): (ApiKey.OFFSET_COMMIT, 3),
    (ApiKey.OFFSET_FETCH, 4): (ApiKey.OFFSET_FETCH, 3),
    # v4 only relaxes semantics: -1 partitions / replication factor mean the default (KIP-464).
    (ApiKey.CREATE_TOPICS, 4): (ApiKey.CREATE_TOPICS, 3),
    (ApiKey.INIT_PRODUCER_ID, 1): (ApiKey.INIT_PRODUCER_ID, 0),
    (ApiKey.ADD_PARTITIONS_TO_TXN, 1): (ApiKey.ADD_PARTITIONS_TO_TXN, 0),
    (ApiKey.ADD_OFFSETS_TO_TXN, 1): (ApiKey.ADD_OFFSETS_TO_TXN, 0),
    (ApiKey.END_TXN, 1): (ApiKey.END_TXN, 0),
    (ApiKey.TXN_OFFSET_COMMIT, 1): (ApiKey.TXN_OFFSET_COMMIT, 0),
}

_API_VERSIONS_V3_REQUEST = Schema(
    ("client_software_name", CompactString("utf-8")),
    ("client_software_version", CompactString("utf-8")),
    ("tags", TaggedFields),
)
_API_VERSIONS_V3_RESPONSE = Schema(
    ("error_code", Int16),
    (
        "api_versions",
        CompactArray(
            ("api_key", Int16),
            ("min_version", Int16),
            ("max_version", Int16),
            ("tags", TaggedFields),
        ),
    ),
    ("throttle_time_ms", Int32),
    ("tags", TaggedFields),
)
_INCREMENTAL_ALTER_CONFIGS_V0_REQUEST = Schema(
    (
        "resources",
        Array(
            ("resource_type", Int8),
            ("resource_name", String("utf-8")),
            (
                "configs",
                Array(
                    ("name", String("utf-8")),
                    ("config_operation", Int8),
                    ("value", String("utf-8")),
                ),
            ),
        ),
    ),
    ("validate_only", Boolean),
)
_INCREMENTAL_ALTER_CONFIGS_V0_RESPONSE = Schema(
    ("throttle_time_ms", Int32),
    (
        "responses",
        Array(
            ("error_code", Int16),
            ("error_message", String("utf-8")),
            ("resource_type", Int8),
            ("resource_name", String("utf-8")),
        ),
    ),
)


# aiokafka declares ListOffsets v4/v5's current_leader_epoch as an int64; Kafka's message
# definition (and every client that sends it) uses an int32.
_LIST_OFFSETS_V4_REQUEST = Schema(
    ("replica_id", Int32),
    ("isolation_level", Int8),
    (
        "topics",
        Array(
            ("topic", String("utf-8")),
            (
                "partitions",
                Array(
                    ("partition", Int32),
                    ("current_leader_epoch", Int32),
                    ("timestamp", Int64),
                ),
            ),
        ),
    ),
)


# Heartbeat v3 adds the static member's group.instance.id (KIP-345): without it a fenced
# static member only hears UNKNOWN_MEMBER_ID and rejoins instead of stopping.
_HEARTBEAT_V3_REQUEST = Schema(
    ("group", String("utf-8")),
    ("generation_id", Int32),
    ("member_id", String("utf-8")),
    ("group_instance_id", String("utf-8")),
)


# Committed offsets carry the leader epoch of the record before them from OffsetCommit v6,
# OffsetFetch v5 and TxnOffsetCommit v2 on (KIP-320), which clients use to detect truncation.
def _commit_partitions(*, epoch: bool) -> Array:
    fields: list[tuple[str, Any]] = [("partition", Int32), ("offset", Int64)]
    if epoch:
        fields.append(("committed_leader_epoch", Int32))
    fields.append(("metadata", String("utf-8")))
    return Array(("topic", String("utf-8")), ("partitions", Array(*fields)))


def _offset_commit_request(version: int) -> Schema:
    fields: list[tuple[str, Any]] = [
        ("consumer_group", String("utf-8")),
        ("consumer_group_generation_id", Int32),
        ("consumer_id", String("utf-8")),
    ]
    if version >= 7:
        fields.append(("group_instance_id", String("utf-8")))
    fields.append(("topics", _commit_partitions(epoch=version >= 6)))
    return Schema(*fields)


_OFFSET_FETCH_V5_RESPONSE = Schema(
    ("throttle_time_ms", Int32),
    (
        "topics",
        Array(
            ("topic", String("utf-8")),
            (
                "partitions",
                Array(
                    ("partition", Int32),
                    ("offset", Int64),
                    ("committed_leader_epoch", Int32),
                    ("metadata", String("utf-8")),
                    ("error_code", Int16),
                ),
            ),
        ),
    ),
    ("error_code", Int16),
)
_TXN_OFFSET_COMMIT_V2_REQUEST = Schema(
    ("transactional_id", String("utf-8")),
    ("group_id", String("utf-8")),
    ("producer_id", Int64),
    ("producer_epoch", Int16),
    ("topics", _commit_partitions(epoch=True)),
)


@dataclass(frozen=True, slots=True)
class ApiSchema:
    """The request and response layout of one API version."""

    request: Schema
    response: Schema
    # Flexible versions use request header v2 (with tagged fields); ApiVersions answers with
    # response header v0 whatever its version, so clients can always parse it.
    flexible: bool = False


def _from_aiokafka() -> dict[tuple[int, int], ApiSchema]:
    requests: dict[tuple[int, int], Any] = {}
    responses: dict[tuple[int, int], Any] = {}
    for module in (
        "admin",
        "commit",
        "coordination",
        "fetch",
        "group",
        "metadata",
        "offset",
        "produce",
        "transaction",
    ):
        mod = importlib.import_module(f"aiokafka.protocol.{module}")
        for _, member in inspect.getmembers(mod, inspect.isclass):
            cls: Any = member
            if not isinstance(getattr(cls, "API_VERSION", None), int):
                continue
            if issubclass(cls, RequestStruct) and cls is not RequestStruct:
                requests[(cls.API_KEY, cls.API_VERSION)] = cls
            elif issubclass(cls, Response):
                responses[(cls.API_KEY, cls.API_VERSION)] = cls
    found: dict[tuple[int, int], ApiSchema] = {}
    for key, cls in requests.items():
        # Pair by (api, version) rather than trusting RESPONSE_TYPE: aiokafka points
        # DescribeGroups v3 at the v2 response, which lacks authorized_operations.
        response = responses.get(key, cls.RESPONSE_TYPE)
        found[key] = ApiSchema(cls.SCHEMA, response.SCHEMA, cls.FLEXIBLE_VERSION)
    return found


def _build() -> dict[tuple[int, int], ApiSchema]:
    known = _from_aiokafka()
    known[(ApiKey.API_VERSIONS, 3)] = ApiSchema(
        _API_VERSIONS_V3_REQUEST, _API_VERSIONS_V3_RESPONSE, flexible=True
    )
    known[(ApiKey.INCREMENTAL_ALTER_CONFIGS, 0)] = ApiSchema(
        _INCREMENTAL_ALTER_CONFIGS_V0_REQUEST, _INCREMENTAL_ALTER_CONFIGS_V0_RESPONSE
    )
    commit_response = known[(ApiKey.OFFSET_COMMIT, 3)].response
    for version in (5, 6, 7):
        known[(ApiKey.OFFSET_COMMIT, version)] = ApiSchema(
            _offset_commit_request(version), commit_response
        )
    known[(ApiKey.OFFSET_FETCH, 5)] = ApiSchema(
        known[(ApiKey.OFFSET_FETCH, 3)].request, _OFFSET_FETCH_V5_RESPONSE
    )
    known[(ApiKey.TXN_OFFSET_COMMIT, 2)] = ApiSchema(
        _TXN_OFFSET_COMMIT_V2_REQUEST, known[(ApiKey.TXN_OFFSET_COMMIT, 0)].response
    )
    known[(ApiKey.HEARTBEAT, 3)] = ApiSchema(
        _HEARTBEAT_V3_REQUEST, known[(ApiKey.HEARTBEAT, 1)].response
    )
    for version in (4, 5):
        known[(ApiKey.LIST_OFFSETS, version)] = ApiSchema(
            _LIST_OFFSETS_V4_REQUEST, known[(ApiKey.LIST_OFFSETS, version)].response
        )
    # aiokafka labels its ListGroups v2 request as v1; the v2 request is empty like v1's.
    from aiokafka.protocol.admin import ListGroupsRequest_v1, ListGroupsResponse_v2

    known[(ApiKey.LIST_GROUPS, 2)] = ApiSchema(
        ListGroupsRequest_v1.SCHEMA, ListGroupsResponse_v2.SCHEMA
    )
    for alias, original in _SAME_AS.items():
        known[alias] = known[original]
    table: dict[tuple[int, int], ApiSchema] = {}
    for api, (low, high) in API_VERSIONS.items():
        for version in range(low, high + 1):
            if (api, version) not in known:  # pragma: no cover - guards the table above
                raise RuntimeError(f"no schema for {api.name} v{version}")
            table[(api, version)] = known[(api, version)]
    return table


SCHEMAS: dict[tuple[int, int], ApiSchema] = _build()


def supported(api_key: int, version: int) -> bool:
    """Whether the broker implements this API at this version."""
    return (api_key, version) in SCHEMAS
