"""The registry plugin: the schema registry's slice of the resource graph.

Installed with ``[plugins.registry]`` in ``netscript.toml``. On the embedded log (and on an
external Kafka) it is the ``registry`` service on :8081 (``netscript registry serve``), keeping
its state in the compacted ``_schemas`` topic. When the log is Redpanda, which serves the same
Confluent API itself, the ``registry`` resource is Redpanda's registry and no process is added.
Either way, whoever references it gets ``SCHEMA_REGISTRY_URL``.
"""

from __future__ import annotations

from collections.abc import Sequence

from topology import (
    BaseContribution,
    ContributionContext,
    Export,
    GraphBuilder,
    Resource,
    TopicSpec,
)

PORT = 8081
TOPIC = "_schemas"
URL = Export(env="SCHEMA_REGISTRY_URL", template="{scheme}://{host}:{port}")


class RegistryContribution(BaseContribution):
    """The schema registry, or Redpanda's where the log serves one."""

    plugin_name = "registry"

    def contribute(
        self, builder: GraphBuilder, context: ContributionContext
    ) -> Sequence[Resource]:
        served = context.log_schema_registry
        if served is not None:
            return [builder.provided(
                "registry", by=served, exports=[URL],
                description=f"the schema registry, served by {served.resource}")]
        return [builder.service(
            "registry", port=PORT, exports=[URL],
            command=["registry", "serve", "--host", "{host}", "--port", "{port}"],
            description="the Confluent-compatible schema registry",
        )]

    def declare_topics(self, context: ContributionContext) -> Sequence[TopicSpec]:
        if context.log_schema_registry is not None:
            return []
        return [TopicSpec(name=TOPIC, cleanup_policy="compact", retention_ms=-1)]


contribution = RegistryContribution()
