"""Wire schemas the broker speaks that aiokafka's protocol structs lack or get wrong.

Each is written with aiokafka's field types and named after Kafka's message definitions; the
version table in ``_apis`` decides where each one is used. APIs with flexible versions are built
per version by functions (``metadata_request(12)``) on a ``Layout``.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from aiokafka.protocol.types import (
    Array,
    Boolean,
    Bytes,
    CompactArray,
    CompactBytes,
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


# -- layouts written per version --------------------------------------------------------------
# Flexible versions (KIP-482) encode strings, bytes and arrays compactly and end every struct in
# a tagged-field buffer. ``Layout`` hands out the right field type for a version, so one builder
# writes every version of an API; field names follow aiokafka's where aiokafka has the API.


class Uuid:
    """A 16-byte UUID (KIP-516 topic ids), kept as its raw bytes."""

    ZERO = bytes(16)

    @classmethod
    def encode(cls, value: bytes) -> bytes:
        if len(value) != 16:
            raise ValueError(f"a uuid is 16 bytes, not {len(value)}")
        return bytes(value)

    @classmethod
    def decode(cls, data: BytesIO) -> bytes:
        value = data.read(16)
        if len(value) != 16:
            raise ValueError("Buffer underrun decoding uuid")
        return value


class Layout:
    """The field types of one API version: compact and tagged when ``flexible``."""

    def __init__(self, flexible: bool) -> None:
        self.flexible = flexible
        self.string: String = CompactString("utf-8") if flexible else String("utf-8")
        self.bytes: Any = CompactBytes if flexible else Bytes

    def schema(self, *fields: tuple[str, Any]) -> Schema:
        """A top-level request or response body."""
        return Schema(*fields, ("tags", TaggedFields)) if self.flexible else Schema(*fields)

    def array(self, *fields: tuple[str, Any]) -> Array:
        """An array of structs (each with its own tagged fields when flexible)."""
        return CompactArray(self.schema(*fields)) if self.flexible else Array(Schema(*fields))

    def array_of(self, kind: Any) -> Array:
        """An array of a primitive type."""
        return CompactArray(kind) if self.flexible else Array(kind)


def metadata_request(version: int) -> Schema:
    """Metadata v0-12: topic ids from v10 (looked up by id from v12), flexible from v9."""
    wire = Layout(version >= 9)
    topic: list[tuple[str, Any]] = [("name", wire.string)]
    if version >= 10:
        topic.insert(0, ("topic_id", Uuid))
    fields: list[tuple[str, Any]] = [("topics", wire.array(*topic))]
    if version >= 4:
        fields.append(("allow_auto_topic_creation", Boolean))
    if 8 <= version <= 10:
        fields.append(("include_cluster_authorized_operations", Boolean))
    if version >= 8:
        fields.append(("include_topic_authorized_operations", Boolean))
    return wire.schema(*fields)


def metadata_response(version: int) -> Schema:
    wire = Layout(version >= 9)
    broker: list[tuple[str, Any]] = [("node_id", Int32), ("host", wire.string), ("port", Int32)]
    if version >= 1:
        broker.append(("rack", wire.string))
    partition: list[tuple[str, Any]] = [
        ("error_code", Int16),
        ("partition_index", Int32),
        ("leader_id", Int32),
    ]
    if version >= 7:
        partition.append(("leader_epoch", Int32))
    partition += [("replica_nodes", wire.array_of(Int32)), ("isr_nodes", wire.array_of(Int32))]
    if version >= 5:
        partition.append(("offline_replicas", wire.array_of(Int32)))
    topic: list[tuple[str, Any]] = [("error_code", Int16), ("name", wire.string)]
    if version >= 10:
        topic.append(("topic_id", Uuid))
    if version >= 1:
        topic.append(("is_internal", Boolean))
    topic.append(("partitions", wire.array(*partition)))
    if version >= 8:
        topic.append(("topic_authorized_operations", Int32))
    fields: list[tuple[str, Any]] = [("throttle_time_ms", Int32)] if version >= 3 else []
    fields.append(("brokers", wire.array(*broker)))
    if version >= 2:
        fields.append(("cluster_id", wire.string))
    if version >= 1:
        fields.append(("controller_id", Int32))
    fields.append(("topics", wire.array(*topic)))
    if 8 <= version <= 10:
        fields.append(("cluster_authorized_operations", Int32))
    return wire.schema(*fields)


def describe_groups_request(version: int) -> Schema:
    """DescribeGroups v0-5: authorized operations from v3, group.instance.id from v4."""
    wire = Layout(version >= 5)
    fields: list[tuple[str, Any]] = [("groups", wire.array_of(wire.string))]
    if version >= 3:
        fields.append(("include_authorized_operations", Boolean))
    return wire.schema(*fields)


def describe_groups_response(version: int) -> Schema:
    wire = Layout(version >= 5)
    member: list[tuple[str, Any]] = [("member_id", wire.string)]
    if version >= 4:
        member.append(("group_instance_id", wire.string))
    member += [
        ("client_id", wire.string),
        ("client_host", wire.string),
        ("member_metadata", wire.bytes),
        ("member_assignment", wire.bytes),
    ]
    group: list[tuple[str, Any]] = [
        ("error_code", Int16),
        ("group", wire.string),
        ("state", wire.string),
        ("protocol_type", wire.string),
        ("protocol", wire.string),
        ("members", wire.array(*member)),
    ]
    if version >= 3:
        group.append(("authorized_operations", Int32))
    fields: list[tuple[str, Any]] = [("throttle_time_ms", Int32)] if version >= 1 else []
    fields.append(("groups", wire.array(*group)))
    return wire.schema(*fields)


def list_groups_request(version: int) -> Schema:
    """ListGroups v0-5: flexible from v3, a states filter from v4, a types filter from v5."""
    wire = Layout(version >= 3)
    fields: list[tuple[str, Any]] = []
    if version >= 4:
        fields.append(("states_filter", wire.array_of(wire.string)))
    if version >= 5:
        fields.append(("types_filter", wire.array_of(wire.string)))
    return wire.schema(*fields)


def list_groups_response(version: int) -> Schema:
    wire = Layout(version >= 3)
    group: list[tuple[str, Any]] = [("group", wire.string), ("protocol_type", wire.string)]
    if version >= 4:
        group.append(("group_state", wire.string))
    if version >= 5:
        group.append(("group_type", wire.string))
    fields: list[tuple[str, Any]] = [("throttle_time_ms", Int32)] if version >= 1 else []
    fields += [("error_code", Int16), ("groups", wire.array(*group))]
    return wire.schema(*fields)


OFFSET_DELETE_V0_REQUEST = Schema(
    ("group_id", String("utf-8")),
    (
        "topics",
        Array(("name", String("utf-8")), ("partitions", Array(Schema(("partition_index", Int32))))),
    ),
)
OFFSET_DELETE_V0_RESPONSE = Schema(
    ("error_code", Int16),
    ("throttle_time_ms", Int32),
    (
        "topics",
        Array(
            ("name", String("utf-8")),
            ("partitions", Array(("partition_index", Int32), ("error_code", Int16))),
        ),
    ),
)

_FLEX = Layout(flexible=True)
DESCRIBE_USER_SCRAM_CREDENTIALS_V0_REQUEST = _FLEX.schema(
    ("users", _FLEX.array(("name", _FLEX.string)))
)
DESCRIBE_USER_SCRAM_CREDENTIALS_V0_RESPONSE = _FLEX.schema(
    ("throttle_time_ms", Int32),
    ("error_code", Int16),
    ("error_message", _FLEX.string),
    (
        "results",
        _FLEX.array(
            ("user", _FLEX.string),
            ("error_code", Int16),
            ("error_message", _FLEX.string),
            ("credential_infos", _FLEX.array(("mechanism", Int8), ("iterations", Int32))),
        ),
    ),
)
ALTER_USER_SCRAM_CREDENTIALS_V0_REQUEST = _FLEX.schema(
    ("deletions", _FLEX.array(("name", _FLEX.string), ("mechanism", Int8))),
    (
        "upsertions",
        _FLEX.array(
            ("name", _FLEX.string),
            ("mechanism", Int8),
            ("iterations", Int32),
            ("salt", CompactBytes),
            ("salted_password", CompactBytes),
        ),
    ),
)
ALTER_USER_SCRAM_CREDENTIALS_V0_RESPONSE = _FLEX.schema(
    ("throttle_time_ms", Int32),
    (
        "results",
        _FLEX.array(("user", _FLEX.string), ("error_code", Int16), ("error_message", _FLEX.string)),
    ),
)


def describe_cluster_request(version: int) -> Schema:
    """DescribeCluster v0-1 (always flexible); v1 names the endpoint type (KIP-919)."""
    fields: list[tuple[str, Any]] = [("include_cluster_authorized_operations", Boolean)]
    if version >= 1:
        fields.append(("endpoint_type", Int8))
    return _FLEX.schema(*fields)


def describe_cluster_response(version: int) -> Schema:
    fields: list[tuple[str, Any]] = [
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", _FLEX.string),
    ]
    if version >= 1:
        fields.append(("endpoint_type", Int8))
    fields += [
        ("cluster_id", _FLEX.string),
        ("controller_id", Int32),
        (
            "brokers",
            _FLEX.array(
                ("broker_id", Int32),
                ("host", _FLEX.string),
                ("port", Int32),
                ("rack", _FLEX.string),
            ),
        ),
        ("cluster_authorized_operations", Int32),
    ]
    return _FLEX.schema(*fields)
