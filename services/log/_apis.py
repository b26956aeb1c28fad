"""Which Kafka APIs and versions the broker speaks, and their wire schemas.

Schemas come from aiokafka's protocol structs. Versions whose layout is identical to a
neighbour (e.g. JoinGroup v3/v4 = v2) reuse it, and the schemas aiokafka lacks or gets wrong are
written in ``_schemas`` with aiokafka's field types: single versions, and every version of the
APIs with flexible versions (Metadata, DescribeGroups, ListGroups, DescribeCluster, SCRAM).
``API_VERSIONS`` is exactly what ApiVersions advertises: every entry has a handler and a schema
for every version in its range.
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
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    INCREMENTAL_ALTER_CONFIGS = 44
    OFFSET_DELETE = 47
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    DESCRIBE_CLUSTER = 60


# The advertised ranges. Most stop where aiokafka's structs stop: the next versions of those
# APIs are "flexible" (compact encodings and tagged fields), which its structs do not decode.
# Metadata, DescribeGroups, ListGroups and the APIs that only exist flexible are written per
# version in ``_schemas``.
API_VERSIONS: dict[ApiKey, tuple[int, int]] = {
    ApiKey.PRODUCE: (3, 8),
    ApiKey.FETCH: (4, 11),
    ApiKey.LIST_OFFSETS: (0, 5),
    ApiKey.METADATA: (0, 12),
    ApiKey.OFFSET_COMMIT: (2, 7),
    ApiKey.OFFSET_FETCH: (1, 5),
    ApiKey.FIND_COORDINATOR: (0, 1),
    ApiKey.JOIN_GROUP: (0, 5),
    ApiKey.HEARTBEAT: (0, 3),
    ApiKey.LEAVE_GROUP: (0, 1),
    ApiKey.SYNC_GROUP: (0, 3),
    ApiKey.DESCRIBE_GROUPS: (0, 5),
    ApiKey.LIST_GROUPS: (0, 5),
    ApiKey.API_VERSIONS: (0, 3),
    ApiKey.CREATE_TOPICS: (0, 4),
    ApiKey.DELETE_TOPICS: (0, 3),
    ApiKey.DELETE_RECORDS: (0, 1),
    ApiKey.INIT_PRODUCER_ID: (0, 1),
    ApiKey.ADD_PARTITIONS_TO_TXN: (0, 1),
    ApiKey.ADD_OFFSETS_TO_TXN: (0, 1),
    ApiKey.END_TXN: (0, 1),
    ApiKey.TXN_OFFSET_COMMIT: (0, 2),
    ApiKey.DESCRIBE_ACLS: (0, 1),
    ApiKey.CREATE_ACLS: (0, 1),
    ApiKey.DELETE_ACLS: (0, 1),
    ApiKey.DESCRIBE_CONFIGS: (0, 2),
    ApiKey.ALTER_CONFIGS: (0, 1),
    ApiKey.CREATE_PARTITIONS: (0, 1),
    ApiKey.DELETE_GROUPS: (0, 1),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: (0, 0),
    ApiKey.OFFSET_DELETE: (0, 0),
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: (0, 0),
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: (0, 0),
    ApiKey.DESCRIBE_CLUSTER: (0, 1),
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
        # Pair by (api, version) rather than trusting RESPONSE_TYPE, which aiokafka gets wrong
        # for some versions (DescribeGroups v3 points at the v2 response).
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
    # Written per version: every version of these APIs, flexible or not.
    per_version = {
        ApiKey.METADATA: (_schemas.metadata_request, _schemas.metadata_response, 9),
        ApiKey.DESCRIBE_GROUPS: (
            _schemas.describe_groups_request,
            _schemas.describe_groups_response,
            5,
        ),
        ApiKey.LIST_GROUPS: (_schemas.list_groups_request, _schemas.list_groups_response, 3),
        ApiKey.DESCRIBE_CLUSTER: (
            _schemas.describe_cluster_request,
            _schemas.describe_cluster_response,
            0,
        ),
    }
    for api, (request, response, first_flexible) in per_version.items():
        low, high = API_VERSIONS[api]
        for version in range(low, high + 1):
            known[(api, version)] = ApiSchema(
                request(version), response(version), flexible=version >= first_flexible
            )
    known[(ApiKey.OFFSET_DELETE, 0)] = ApiSchema(
        _schemas.OFFSET_DELETE_V0_REQUEST, _schemas.OFFSET_DELETE_V0_RESPONSE
    )
    known[(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0)] = ApiSchema(
        _schemas.DESCRIBE_USER_SCRAM_CREDENTIALS_V0_REQUEST,
        _schemas.DESCRIBE_USER_SCRAM_CREDENTIALS_V0_RESPONSE,
        flexible=True,
    )
    known[(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0)] = ApiSchema(
        _schemas.ALTER_USER_SCRAM_CREDENTIALS_V0_REQUEST,
        _schemas.ALTER_USER_SCRAM_CREDENTIALS_V0_RESPONSE,
        flexible=True,
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
