"""A small third-party-style plugin for the topology tests.

``probe`` contributes an API that calls the streams plugin and needs the database, and a
background processor that calls that API; it owns one topic. Tests install it with
``entry = "tests.topology.probe_plugin:ProbeContribution"`` or pass it to ``build_graph``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from topology import (
    BaseContribution,
    ContributionContext,
    GraphBuilder,
    References,
    Resource,
    TopicSpec,
)


class ProbeContribution(BaseContribution):
    """An API (``probe-api`` on :8099) and a processor (``probe-worker``)."""

    plugin_name = "probe"

    def contribute(
        self, builder: GraphBuilder, context: ContributionContext
    ) -> Sequence[Resource]:
        return [
            builder.service("probe-api", port=8099, command=["probe", "serve"],
                            references=References(plugins=("streams",), requires_db=True)),
            builder.background("probe-worker", command=["probe", "work"],
                               references=References(services=("probe-api",))),
        ]

    def declare_env(self, context: ContributionContext) -> Mapping[str, str]:
        return {"PROBE_MODE": str(context.settings.get("mode", "default"))}

    def declare_topics(self, context: ContributionContext) -> Sequence[TopicSpec]:
        return [TopicSpec(name="probe-events", partitions=3, retention_ms=86_400_000)]


class FixedContribution(BaseContribution):
    """A contribution whose resources are given at construction (for composition tests)."""

    def __init__(self, name: str, resources: Sequence[Resource] = ()) -> None:
        self.plugin_name = name
        self._resources = list(resources)

    def contribute(
        self, builder: GraphBuilder, context: ContributionContext
    ) -> Sequence[Resource]:
        return self._resources
