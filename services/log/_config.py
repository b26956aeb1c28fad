"""Typed settings of the broker and of each topic."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from services.log._errors import ErrorCode, KafkaError

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicConfig:
    """Per-topic settings, named after their Kafka keys with dots turned into underscores."""

    cleanup_policy: str = "delete"  # "delete" | "compact" | "compact,delete"
    retention_ms: int = 7 * DAY_MS  # -1: keep forever
    retention_bytes: int = -1  # -1: no size limit
    segment_bytes: int = 128 * 1024 * 1024
    delete_retention_ms: int = DAY_MS
    min_compaction_lag_ms: int = 0
    max_message_bytes: int = 1024 * 1024 + 12
    # Kafka topic configs this broker accepts and reports but does not act on (replication,
    # message format, flush tuning, ...), so tools that set them keep working.
    accepted: tuple[tuple[str, str], ...] = ()

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy

    def to_kafka(self) -> dict[str, str]:
        """The settings as Kafka's string-valued config map."""
        values = {key: str(getattr(self, attr)) for key, attr in _KEYS.items()}
        values.update(self.accepted)
        return values

    def with_kafka(self, changes: Mapping[str, str | None]) -> TopicConfig:
        """A copy with Kafka-named settings applied (``None`` resets to the default).

        Raises ``KafkaError(INVALID_CONFIG)`` naming the key at fault.
        """
        defaults = TopicConfig()
        updates: dict[str, Any] = {}
        accepted = dict(self.accepted)
        for key, raw in changes.items():
            attr = _KEYS.get(key)
            if attr is None and key in ACCEPTED_TOPIC_CONFIG_KEYS:
                if raw is None:
                    accepted.pop(key, None)
                else:
                    accepted[key] = raw
                updates["accepted"] = tuple(sorted(accepted.items()))
                continue
            if attr is None:
                raise KafkaError(
                    ErrorCode.INVALID_CONFIG,
                    f"unknown topic config {key!r}; supported: {', '.join(sorted(_KEYS))}",
                )
            if raw is None:
                updates[attr] = getattr(defaults, attr)
            elif attr == "cleanup_policy":
                policy = ",".join(sorted(p.strip() for p in raw.split(",") if p.strip()))
                if policy not in ("delete", "compact", "compact,delete"):
                    raise KafkaError(
                        ErrorCode.INVALID_CONFIG,
                        f"cleanup.policy must be delete, compact or compact,delete, not {raw!r}",
                    )
                updates[attr] = policy
            else:
                try:
                    updates[attr] = int(raw)
                except ValueError:
                    raise KafkaError(
                        ErrorCode.INVALID_CONFIG, f"{key} must be an integer, not {raw!r}"
                    ) from None
        return replace(self, **updates)


_KEYS: dict[str, str] = {
    "cleanup.policy": "cleanup_policy",
    "retention.ms": "retention_ms",
    "retention.bytes": "retention_bytes",
    "segment.bytes": "segment_bytes",
    "delete.retention.ms": "delete_retention_ms",
    "min.compaction.lag.ms": "min_compaction_lag_ms",
    "max.message.bytes": "max_message_bytes",
}
# Real Kafka topic configs that have no effect on a single-node broker of this design.
ACCEPTED_TOPIC_CONFIG_KEYS = frozenset(
    {
        "compression.type",
        "file.delete.delay.ms",
        "flush.messages",
        "flush.ms",
        "follower.replication.throttled.replicas",
        "index.interval.bytes",
        "leader.replication.throttled.replicas",
        "max.compaction.lag.ms",
        "message.downconversion.enable",
        "message.format.version",
        "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.difference.max.ms",
        "message.timestamp.type",
        "min.cleanable.dirty.ratio",
        "min.insync.replicas",
        "preallocate",
        "segment.index.bytes",
        "segment.jitter.ms",
        "segment.ms",
        "unclean.leader.election.enable",
    }
)
TOPIC_CONFIG_KEYS = frozenset(_KEYS) | ACCEPTED_TOPIC_CONFIG_KEYS


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerConfig:
    """Settings of one single-node broker.

    ``advertised_host``/``advertised_port`` default to the bound address; set them when clients
    reach the broker through another name (a container, a proxy).
    """

    host: str = "127.0.0.1"
    port: int = 9092
    data_dir: Path = Path(".data/log")
    node_id: int = 0
    advertised_host: str | None = None
    advertised_port: int | None = None
    cluster_id: str = "netscript-embedded"
    auto_create_topics: bool = True
    default_partitions: int = 1
    topic_defaults: TopicConfig = field(default_factory=TopicConfig)
    # acks=1 and acks=0 writes are fsynced at most this long after they are acknowledged.
    flush_interval_ms: int = 1000
    group_initial_rebalance_delay_ms: int = 3000
    group_min_session_timeout_ms: int = 1000
    group_max_session_timeout_ms: int = 30 * 60 * 1000
    transaction_max_timeout_ms: int = 15 * 60 * 1000
    # How often the cleaner applies retention and compaction.
    cleaner_interval_ms: int = 30_000
    # Most segment files (and partition directories) open at once, least recently used closed
    # first; None: half the soft RLIMIT_NOFILE, at least 64 (the rest is for connections).
    max_open_files: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> BrokerConfig:
        """Settings from ``NETSCRIPT_LOG_*`` variables, then explicit overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if "NETSCRIPT_LOG_DATA_DIR" in env:
            values["data_dir"] = Path(env["NETSCRIPT_LOG_DATA_DIR"])
        for name, attr in (
            ("NETSCRIPT_LOG_HOST", "host"),
            ("NETSCRIPT_LOG_ADVERTISED_HOST", "advertised_host"),
        ):
            if name in env:
                values[attr] = env[name]
        for name, attr in (
            ("NETSCRIPT_LOG_PORT", "port"),
            ("NETSCRIPT_LOG_NODE_ID", "node_id"),
            ("NETSCRIPT_LOG_DEFAULT_PARTITIONS", "default_partitions"),
            ("NETSCRIPT_LOG_MAX_OPEN_FILES", "max_open_files"),
        ):
            if name in env:
                values[attr] = int(env[name])
        if "NETSCRIPT_LOG_AUTO_CREATE_TOPICS" in env:
            values["auto_create_topics"] = env["NETSCRIPT_LOG_AUTO_CREATE_TOPICS"].lower() in (
                "1",
                "true",
                "yes",
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
