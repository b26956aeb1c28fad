"""The topics background jobs live on (names shared by the dispatcher, the worker pools, the
API and the plugin's contribution to the topology).

The dispatcher is one exactly-once processor over single-partition inputs: credits are a
global quantity (a pool's capacity spans both lanes and every job), so one owner decides every
lease. Its table changelogs are the durable state; a second replica is a hot standby that takes
over on a rebalance.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from services.kernel._topics import TopicConfig
from services.workers._jobs import Lane

NORMAL = "workers.jobs.normal"
"""Job requests of the normal lane, keyed by execution id."""
URGENT = "workers.jobs.urgent"
"""Job requests of the urgent lane (its share of every pool's capacity is reserved)."""
LANE_TOPICS: dict[Lane, str] = {"normal": NORMAL, "urgent": URGENT}
REPORTS = "workers.reports"
"""Worker pools → dispatcher: hello, heartbeats (with progress), started, finished, bye."""
COMMANDS = "workers.commands"
"""API → dispatcher: cancel, preempt."""
TICKS = "workers.ticks"
"""The dispatcher's clock: lease expiry, backoff, stuck detection fire on ticks."""
ASSIGNMENTS = "workers.assignments"
"""Dispatcher → worker pools: leases and revocations, keyed by pool id; a pool reads the
partition :func:`assignment_partition` names."""
DEAD_LETTER = "workers.dlq"
"""Executions that used up their attempts, and poison records, with ``x-error-*`` headers."""
DISPATCHER_ID = "netscript-workers"
"""The dispatcher's consumer group and faust app id."""
EXECUTIONS_TABLE = "executions"
EXECUTIONS_CHANGELOG = f"{DISPATCHER_ID}-{EXECUTIONS_TABLE}-changelog"
"""Every execution's latest state (compacted): the read side's source."""
POOLS_TABLE = "pools"
POOLS_CHANGELOG = f"{DISPATCHER_ID}-{POOLS_TABLE}-changelog"
"""Every worker pool's capacity and liveness (compacted)."""
ASSIGNMENT_PARTITIONS = 8


def assignment_partition(pool_id: str, partitions: int = ASSIGNMENT_PARTITIONS) -> int:
    """The ``workers.assignments`` partition that carries ``pool_id``'s leases (stable)."""
    return zlib.crc32(pool_id.encode()) % partitions


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicPlan:
    """One topic the workers plugin owns."""

    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None


def topic_plans() -> tuple[TopicPlan, ...]:
    """Every topic of the dispatcher and the pools."""
    hour = 3_600_000
    return (
        TopicPlan(name=NORMAL, partitions=1),
        TopicPlan(name=URGENT, partitions=1),
        TopicPlan(name=REPORTS, partitions=1, retention_ms=24 * hour),
        TopicPlan(name=COMMANDS, partitions=1),
        TopicPlan(name=TICKS, partitions=1, retention_ms=hour),
        TopicPlan(name=ASSIGNMENTS, partitions=ASSIGNMENT_PARTITIONS, retention_ms=24 * hour),
        TopicPlan(name=DEAD_LETTER, partitions=1),
        TopicPlan(name=EXECUTIONS_CHANGELOG, partitions=1, compacted=True),
        TopicPlan(name=POOLS_CHANGELOG, partitions=1, compacted=True),
    )


def topic_configs() -> list[TopicConfig]:
    """The topics as the kernel's :func:`~services.kernel.ensure_topics` takes them."""
    out = []
    for plan in topic_plans():
        configs = {"cleanup.policy": "compact" if plan.compacted else "delete"}
        if plan.retention_ms is not None:
            configs["retention.ms"] = str(plan.retention_ms)
        out.append(TopicConfig(name=plan.name, partitions=plan.partitions, configs=configs))
    return out
