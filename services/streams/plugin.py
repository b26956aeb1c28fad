"""The streams plugin: the durable streams gateway's slice of the resource graph.

Installed with ``[plugins.streams]`` in ``netscript.toml``: the ``streams`` service on :4437
(``netscript streams serve``), ready when ``/health/ready`` answers, and the compacted catalog
topic ``__netscript_streams`` it keeps every stream's configuration in. Settings:
``port``, ``long_poll_timeout`` (seconds), ``env``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from topology import (
    BaseContribution,
    ContributionContext,
    GraphBuilder,
    HealthCheck,
    Resource,
    SchemaSubject,
    TopicSpec,
)

PORT = 4437
CATALOG_TOPIC = "__netscript_streams"
CHANGE_EVENT_SUBJECT = "netscript.streams.ChangeEvent"


class StreamsContribution(BaseContribution):
    """The ``streams`` gateway, its catalog topic and its change-event schema."""

    plugin_name = "streams"

    def contribute(
        self, builder: GraphBuilder, context: ContributionContext
    ) -> Sequence[Resource]:
        command = ["streams", "serve", "--host", "{host}", "--port", "{port}"]
        if "long_poll_timeout" in context.settings:
            command += ["--long-poll-timeout", str(float(context.settings["long_poll_timeout"]))]
        return [builder.service(
            "streams", port=PORT, command=command,
            description="durable streams over HTTP/SSE (the Durable Streams protocol)",
        )]

    def declare_health_checks(self, context: ContributionContext) -> Mapping[str, HealthCheck]:
        return {"streams": HealthCheck(http_path="/health/ready")}

    def declare_topics(self, context: ContributionContext) -> Sequence[TopicSpec]:
        return [TopicSpec(name=CATALOG_TOPIC, cleanup_policy="compact", retention_ms=-1)]

    def declare_schemas(self, context: ContributionContext) -> Sequence[SchemaSubject]:
        return [SchemaSubject(subject=CHANGE_EVENT_SUBJECT,
                              schema=Path("schemas/streams/ChangeEvent.avsc"))]


contribution = StreamsContribution()
