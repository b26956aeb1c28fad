"""The workers plugin: background jobs as a slice of the resource graph.

Installed with ``[plugins.workers]`` in ``netscript.toml``: the ``workers`` API on :8091
(``netscript workers serve``), the ``workers-dispatcher`` processor (``netscript workers
dispatch``, the one owner of every lease) and the ``workers-pools`` processor (``netscript
workers run``), their topics and the Avro schemas of a job request and an execution. Settings:
``pools`` (WORKER_POOLS_COUNT, default 2), ``capacity`` (WORKER_POOL_CAPACITY, 10),
``urgent_percentage`` (20), ``heartbeat_seconds`` (2), ``jobs`` (``module:attribute``
references; default: the seed's examples), ``lane_limit_normal`` / ``lane_limit_urgent``
(admission control), ``port``, ``replicas`` (of each processor), ``env``. With the sagas plugin
installed the pools get its URL (the ``create-user-settings`` job publishes there); with
streams, the API mirrors executions into ``/workers/executions``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from topology import (
    BaseContribution,
    ContributionContext,
    GraphBuilder,
    HealthCheck,
    References,
    Resource,
    SchemaSubject,
    TopicSpec,
)

PORT = 8091
DISPATCHER_HEALTH_PORT = 8191
POOLS_HEALTH_PORT = 8291
SCHEMAS = {"netscript.workers.JobRequest": Path("schemas/workers/JobRequest.avsc"),
           "netscript.workers.Execution": Path("schemas/workers/Execution.avsc")}


def _env(context: ContributionContext) -> tuple[dict[str, str], dict[str, str]]:
    """(the API's env, the pools' env) from the plugin's settings."""
    settings: Mapping[str, Any] = context.settings
    common: dict[str, str] = {}
    jobs = settings.get("jobs")
    if isinstance(jobs, list):
        jobs = ",".join(str(j) for j in jobs)
    if jobs:
        common["NETSCRIPT_JOBS"] = str(jobs)
    api = dict(common)
    for lane in ("normal", "urgent"):
        if f"lane_limit_{lane}" in settings:
            api[f"WORKER_LANE_LIMIT_{lane.upper()}"] = str(int(settings[f"lane_limit_{lane}"]))
    pools = {**common,
             "WORKER_POOLS_COUNT": str(int(settings.get("pools", 2))),
             "WORKER_POOL_CAPACITY": str(int(settings.get("capacity", 10))),
             "WORKER_POOL_URGENT_PERCENTAGE": str(settings.get("urgent_percentage", 20)),
             "WORKER_HEARTBEAT_SECONDS": str(settings.get("heartbeat_seconds", 2))}
    return api, pools


class WorkersContribution(BaseContribution):
    """The ``workers`` API, the ``workers-dispatcher`` and the ``workers-pools``."""

    plugin_name = "workers"

    def contribute(
        self, builder: GraphBuilder, context: ContributionContext
    ) -> Sequence[Resource]:
        installed = {p.name for p in context.app.plugins}
        api_env, pools_env = _env(context)
        return [
            builder.service(
                "workers", port=PORT, env=api_env,
                command=["workers", "serve", "--host", "{host}", "--port", "{port}"],
                references=References(plugins=tuple(p for p in ("streams",) if p in installed)),
                description="workers API: jobs, triggers, executions, pools, seed (SSE)"),
            builder.background(
                "workers-dispatcher", port=DISPATCHER_HEALTH_PORT, health_path="/health/ready",
                command=["workers", "dispatch", "--host", "{host}", "--health-port", "{port}"],
                description="the job dispatcher (leases, credits, exactly-once)"),
            builder.background(
                "workers-pools", env=pools_env, port=POOLS_HEALTH_PORT,
                health_path="/health/ready",
                command=["workers", "run", "--host", "{host}", "--health-port", "{port}"],
                references=References(plugins=tuple(p for p in ("sagas",) if p in installed)),
                description="worker pools (credits, urgent lane, heartbeats)"),
        ]

    def declare_health_checks(self, context: ContributionContext) -> Mapping[str, HealthCheck]:
        return {"workers": HealthCheck(http_path="/health/ready")}

    def declare_topics(self, context: ContributionContext) -> Sequence[TopicSpec]:
        from services.workers._topics import topic_plans

        return [TopicSpec(name=t.name, partitions=t.partitions,
                          cleanup_policy="compact" if t.compacted else "delete",
                          retention_ms=t.retention_ms) for t in topic_plans()]

    def declare_schemas(self, context: ContributionContext) -> Sequence[SchemaSubject]:
        return [SchemaSubject(subject=name, schema=path) for name, path in SCHEMAS.items()]


contribution = WorkersContribution()
