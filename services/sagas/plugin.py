"""The sagas plugin: the saga runtime and the :8092 API as a slice of the resource graph.

Installed with ``[plugins.sagas]`` in ``netscript.toml``: the ``sagas`` API service on :8092
(``netscript sagas serve``; its URL reaches publishers as ``services__sagas__http__0``) and the
``sagas-runtime`` processor (``netscript sagas run``), the bus and its co-partitioned topics,
and the Avro schemas of the saga message and of every registered payload. Settings:
``store`` (``kv`` — the default written by ``netscript init`` — or ``postgres``),
``partitions`` of the bus (fixed once created), ``sagas`` (``module:attribute`` references;
default: the seed's examples), ``port``, ``replicas`` (of the runtime), ``env``.
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

PORT = 8092
RUNTIME_HEALTH_PORT = 8192
"""Where the runtime answers /health/ready (once its state is recovered)."""
SAGA_MESSAGE = Path("schemas/sagas/SagaMessage.avsc")


def _settings(context: ContributionContext) -> tuple[str, int, str | None]:
    settings: Mapping[str, Any] = context.settings
    store = str(settings.get("store", "kv"))
    partitions = int(settings.get("partitions", 4))
    sagas = settings.get("sagas")
    if isinstance(sagas, list):
        sagas = ",".join(str(s) for s in sagas)
    return store, partitions, str(sagas) if sagas else None


class SagasContribution(BaseContribution):
    """The ``sagas`` API and the ``sagas-runtime`` processor."""

    plugin_name = "sagas"

    def contribute(
        self, builder: GraphBuilder, context: ContributionContext
    ) -> Sequence[Resource]:
        store, partitions, sagas = _settings(context)
        env = {"NETSCRIPT_SAGA_STORE": store}
        if sagas:
            env["NETSCRIPT_SAGAS"] = sagas
        needs_db = store in ("postgres", "prisma")
        mirror = ("streams",) if any(p.name == "streams" for p in context.app.plugins) else ()
        common = ["--partitions", str(partitions)]
        return [
            builder.service(
                "sagas", port=PORT, env=env,
                command=["sagas", "serve", "--host", "{host}", "--port", "{port}", *common],
                references=References(plugins=mirror, requires_db=needs_db),
                description="sagas API: definitions, instances, publish, activity (SSE)"),
            builder.background(
                "sagas-runtime", env=env, port=RUNTIME_HEALTH_PORT,
                health_path="/health/ready",
                command=["sagas", "run", "--host", "{host}", "--health-port", "{port}",
                         *common],
                references=References(requires_db=needs_db),
                description=f"the saga runtime (exactly-once, {store} store)"),
        ]

    def declare_health_checks(self, context: ContributionContext) -> Mapping[str, HealthCheck]:
        return {"sagas": HealthCheck(http_path="/health/ready")}

    def declare_topics(self, context: ContributionContext) -> Sequence[TopicSpec]:
        from services.sagas._topics import topic_plans

        _, partitions, _ = _settings(context)
        return [TopicSpec(name=t.name, partitions=t.partitions,
                          cleanup_policy="compact" if t.compacted else "delete",
                          retention_ms=t.retention_ms) for t in topic_plans(partitions)]

    def declare_schemas(self, context: ContributionContext) -> Sequence[SchemaSubject]:
        from services.sagas._loading import DEFAULT_SAGAS, load_definitions
        from services.sagas._payloads import SCHEMAS_ROOT, AvroPayload

        _, _, sagas = _settings(context)
        subjects = {"netscript.sagas.SagaMessage": SAGA_MESSAGE}
        for definition in load_definitions(sagas or DEFAULT_SAGAS):
            for schema in (definition.payloads or {}).values():
                if isinstance(schema, AvroPayload) and schema.schema.full_name:
                    path = Path(schema.source)
                    if not path.is_absolute():
                        path = Path(SCHEMAS_ROOT.name) / path
                    subjects[schema.schema.full_name] = path
        return [SchemaSubject(subject=name, schema=path) for name, path in subjects.items()]


contribution = SagasContribution()
