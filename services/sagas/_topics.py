"""The topics the saga runtime lives on (names shared by the processor, the API and the
plugin's contribution to the topology)."""

from __future__ import annotations

from dataclasses import dataclass

from services.kernel._topics import TopicConfig

BUS = "sagas.bus"
"""Inbound messages, keyed by instance key (``<saga id>/<correlation key>``)."""
TICKS = "sagas.ticks"
"""Clock ticks, one per partition per second: the processor fires due timers on them.
Co-partitioned with the bus, so a tick on partition p sees the instances of partition p."""
TRANSITIONS = "sagas.transitions"
"""Every recorded transition, keyed by instance key (the history the API serves)."""
COMMANDS = "sagas.commands"
"""``send`` effects to services and jobs, keyed by target id, with an ``idempotency-key``
header."""
DEAD_LETTER = "sagas.bus.dlq"
"""Messages whose handler kept raising, with the error in ``x-error-*`` headers."""
PROCESSOR_ID = "netscript-sagas"
"""The processor's consumer group and faust app id."""
INSTANCES_TABLE = "instances"
INSTANCES_CHANGELOG = f"{PROCESSOR_ID}-{INSTANCES_TABLE}-changelog"
"""The instance table's compacted changelog (faust's naming): the ``kv`` store."""
DEFAULT_PARTITIONS = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicPlan:
    """One topic the sagas plugin owns."""

    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None


def topic_plans(partitions: int = DEFAULT_PARTITIONS) -> tuple[TopicPlan, ...]:
    """Every topic of the runtime; the bus, ticks and changelog share a partition count."""
    hour = 3_600_000
    return (
        TopicPlan(name=BUS, partitions=partitions),
        TopicPlan(name=TICKS, partitions=partitions, retention_ms=hour),
        TopicPlan(name=TRANSITIONS, partitions=partitions, retention_ms=-1),
        TopicPlan(name=COMMANDS, partitions=partitions),
        TopicPlan(name=DEAD_LETTER, partitions=1),
        TopicPlan(name=INSTANCES_CHANGELOG, partitions=partitions, compacted=True),
    )


def topic_configs(partitions: int = DEFAULT_PARTITIONS) -> list[TopicConfig]:
    """The runtime's topics as the kernel's :func:`ensure_topics` takes them."""
    out = []
    for plan in topic_plans(partitions):
        configs = {"cleanup.policy": "compact" if plan.compacted else "delete"}
        if plan.retention_ms is not None:
            configs["retention.ms"] = str(plan.retention_ms)
        out.append(TopicConfig(name=plan.name, partitions=plan.partitions, configs=configs))
    return out
