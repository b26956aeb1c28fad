"""Wire schemas the broker speaks that aiokafka's protocol structs lack or get wrong.

Each is written with aiokafka's field types and named after Kafka's message definitions; the
version table in ``_apis`` decides where each one is used.
"""

from __future__ import annotations

from typing import Any

from aiokafka.protocol.types import (
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

API_VERSIONS_V3_REQUEST = Schema(
    ("client_software_name", CompactString("utf-8")),
    ("client_software_version", CompactString("utf-8")),
    ("tags", TaggedFields),
)
API_VERSIONS_V3_RESPONSE = Schema(
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
INCREMENTAL_ALTER_CONFIGS_V0_REQUEST = Schema(
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
INCREMENTAL_ALTER_CONFIGS_V0_RESPONSE = Schema(
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
LIST_OFFSETS_V4_REQUEST = Schema(
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
HEARTBEAT_V3_REQUEST = Schema(
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


def offset_commit_request(version: int) -> Schema:
    fields: list[tuple[str, Any]] = [
        ("consumer_group", String("utf-8")),
        ("consumer_group_generation_id", Int32),
        ("consumer_id", String("utf-8")),
    ]
    if version >= 7:
        fields.append(("group_instance_id", String("utf-8")))
    fields.append(("topics", _commit_partitions(epoch=version >= 6)))
    return Schema(*fields)


OFFSET_FETCH_V5_RESPONSE = Schema(
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
TXN_OFFSET_COMMIT_V2_REQUEST = Schema(
    ("transactional_id", String("utf-8")),
    ("group_id", String("utf-8")),
    ("producer_id", Int64),
    ("producer_epoch", Int16),
    ("topics", _commit_partitions(epoch=True)),
)
