"""Which Kafka APIs and versions the broker speaks, and their wire schemas.

Schemas come from aiokafka's protocol structs. Versions whose layout is identical to a
neighbour (e.g. JoinGroup v3/v4 = v2) reuse it, and the few schemas aiokafka lacks or gets wrong
are written in ``_schemas`` with aiokafka's field types. ``API_VERSIONS`` is exactly what
ApiVersions advertises: every entry has a handler and a schema for every version in its range.
"""

from __future__ import annotations

import enum
import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from aiokafka.protocol.api import RequestStruct, Response
from aiokafka.protocol.types import Schema

from services.log import _schemas


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
        _schemas.API_VERSIONS_V3_REQUEST, _schemas.API_VERSIONS_V3_RESPONSE, flexible=True
    )
    known[(ApiKey.INCREMENTAL_ALTER_CONFIGS, 0)] = ApiSchema(
        _schemas.INCREMENTAL_ALTER_CONFIGS_V0_REQUEST,
        _schemas.INCREMENTAL_ALTER_CONFIGS_V0_RESPONSE,
    )
    commit_response = known[(ApiKey.OFFSET_COMMIT, 3)].response
    for version in (5, 6, 7):
        known[(ApiKey.OFFSET_COMMIT, version)] = ApiSchema(
            _schemas.offset_commit_request(version), commit_response
        )
    known[(ApiKey.OFFSET_FETCH, 5)] = ApiSchema(
        known[(ApiKey.OFFSET_FETCH, 3)].request, _schemas.OFFSET_FETCH_V5_RESPONSE
    )
    known[(ApiKey.TXN_OFFSET_COMMIT, 2)] = ApiSchema(
        _schemas.TXN_OFFSET_COMMIT_V2_REQUEST, known[(ApiKey.TXN_OFFSET_COMMIT, 0)].response
    )
    known[(ApiKey.HEARTBEAT, 3)] = ApiSchema(
        _schemas.HEARTBEAT_V3_REQUEST, known[(ApiKey.HEARTBEAT, 1)].response
    )
    for version in (4, 5):
        known[(ApiKey.LIST_OFFSETS, version)] = ApiSchema(
            _schemas.LIST_OFFSETS_V4_REQUEST, known[(ApiKey.LIST_OFFSETS, version)].response
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
