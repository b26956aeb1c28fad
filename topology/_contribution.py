"""Plugin contributions: how each installed plugin adds its slice of the graph.

A plugin's :class:`Contribution` names its plugin and, given a :class:`GraphBuilder` and a
:class:`ContributionContext`, returns its resources (its API, its background processors); it may
also declare extra environment, health checks, the topics and the schema subjects it owns.
:func:`compose_app_host` asks every plugin in turn and returns the resources plus a registry
keyed by plugin name. Nothing here knows any particular plugin: adding one to ``netscript.toml``
adds its resources, removing it removes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from topology._appfile import AppFile
from topology._errors import (
    DuplicateContributionError,
    DuplicateResourceError,
    MissingReferenceError,
)
from topology._infrastructure import log_schema_registry
from topology._model import (
    Endpoint,
    Export,
    HealthCheck,
    ProvidedEndpoint,
    References,
    Resource,
    ResourceKind,
    SchemaSubject,
    Target,
    TopicSpec,
)

if TYPE_CHECKING:
    from topology._migrations import Migration
    from topology._pipeline import Step

READY_PATH = "/health/ready"


@dataclass(frozen=True, kw_only=True, slots=True)
class ContributionContext:
    """What a contribution may know about the app it is added to.

    ``settings`` are the plugin's own keys from ``[plugins.<name>]``; ``target`` says whether
    the graph is for ``netscript up`` or ``compose.yaml``; ``log_schema_registry`` is the
    schema registry the log itself serves, if it serves one (Redpanda does).
    """

    app: AppFile
    target: Target
    cluster: bool = False
    plugin: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def log_schema_registry(self) -> ProvidedEndpoint | None:
        """The schema registry the log serves itself (Redpanda's), if it serves one."""
        return log_schema_registry(self.app, self.target, cluster=self.cluster)

    def for_plugin(self, name: str) -> ContributionContext:
        """This context as plugin ``name`` sees it (with its settings)."""
        entry = next((p for p in self.app.plugins if p.name == name), None)
        return replace(self, plugin=name, settings=dict(entry.settings) if entry else {})


@dataclass(frozen=True, kw_only=True, slots=True)
class GraphBuilder:
    """Builds resources with the app file's settings applied (a plugin's port, replicas, env).

    ``compose_app_host`` hands each contribution a builder scoped to its plugin.
    """

    plugin: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def for_plugin(self, name: str, settings: Mapping[str, Any]) -> GraphBuilder:
        return replace(self, plugin=name, settings=settings)

    def _env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {**env, **self.settings.get("env", {})}

    def _is_api(self, name: str) -> bool:
        return self.plugin is not None and name in (self.plugin, f"{self.plugin}-api")

    def service(
        self,
        name: str,
        *,
        port: int,
        command: Sequence[str],
        executable: str | None = None,
        references: References | None = None,
        env: Mapping[str, str] | None = None,
        exports: Sequence[Export] = (),
        health_path: str = READY_PATH,
        volume: str | None = None,
        description: str = "",
    ) -> Resource:
        """A NetScript process with an HTTP API on ``port`` (``port = …`` in the plugin's
        settings moves the plugin's API: the service named like the plugin or ``<plugin>-api``).
        """
        if self._is_api(name):
            port = int(self.settings.get("port", port))
        return Resource(
            name=name, kind=ResourceKind.SERVICE, plugin=self.plugin,
            endpoints=(Endpoint(name="http", port=port, host_port=port),),
            command=tuple(command), executable=executable,
            references=references or References(), env=self._env(env or {}),
            exports=tuple(exports), health=HealthCheck(http_path=health_path), volume=volume,
            description=description,
        )

    def background(
        self,
        name: str,
        *,
        command: Sequence[str],
        executable: str | None = None,
        references: References | None = None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        health_path: str | None = None,
        volume: str | None = None,
        description: str = "",
    ) -> Resource:
        """A NetScript process without a public API: a stream processor.

        ``replicas = N`` in the plugin's settings runs N of each; with ``port``, readiness is
        ``health_path`` (or a TCP connection) there, otherwise the process counts as ready
        once started.
        """
        endpoints = (Endpoint(name="http", port=port, host_port=port),) if port else ()
        return Resource(
            name=name, kind=ResourceKind.BACKGROUND, plugin=self.plugin, endpoints=endpoints,
            command=tuple(command), executable=executable,
            references=references or References(), env=self._env(env or {}),
            health=HealthCheck(http_path=health_path) if port else None, volume=volume,
            replicas=int(self.settings.get("replicas", 1)), description=description,
        )

    def provided(
        self,
        name: str,
        *,
        by: ProvidedEndpoint,
        exports: Sequence[Export] = (),
        description: str = "",
    ) -> Resource:
        """A resource another one serves (e.g. the registry, served by Redpanda)."""
        return Resource(
            name=name, kind=ResourceKind.CONTAINER, plugin=self.plugin,
            endpoints=(by.endpoint,), exports=tuple(exports), provided_by=by.resource,
            references=References(requires_log=False), description=description,
        )


@runtime_checkable
class Contribution(Protocol):
    """A plugin's slice of the graph (the extension point every capability implements).

    Subclass :class:`BaseContribution` to get empty defaults for the ``declare_*`` methods.
    """

    @property
    def plugin_name(self) -> str:
        """The plugin's name: the key of ``[plugins.<name>]`` and of the registry."""
        ...

    def contribute(
        self, builder: GraphBuilder, context: ContributionContext
    ) -> Sequence[Resource]:
        """The resources this plugin adds: its API service, its background processors."""
        ...

    def declare_env(self, context: ContributionContext) -> Mapping[str, str]:
        """Extra environment every resource of this plugin gets."""
        ...

    def declare_health_checks(self, context: ContributionContext) -> Mapping[str, HealthCheck]:
        """Health checks by resource name, replacing the builder's defaults."""
        ...

    def declare_topics(self, context: ContributionContext) -> Sequence[TopicSpec]:
        """The topics this plugin owns (``netscript init`` creates them)."""
        ...

    def declare_schemas(self, context: ContributionContext) -> Sequence[SchemaSubject]:
        """The schema subjects this plugin owns (``netscript init`` registers them)."""
        ...


@runtime_checkable
class PipelineContribution(Protocol):
    """The optional pipeline hooks of a contribution (``netscript do``).

    A contribution without them (one that does not subclass :class:`BaseContribution`)
    contributes no steps and no migrations.
    """

    def steps(self, context: ContributionContext) -> Sequence[Step]:
        """Extra pipeline steps this plugin adds (``netscript do <name>``)."""
        ...

    def migrations(self, context: ContributionContext) -> Sequence[Migration]:
        """This plugin's SQL migrations, in order; ``migrate-db`` applies each once."""
        ...


class BaseContribution:
    """A :class:`Contribution` that declares nothing beyond its resources."""

    plugin_name: str = ""

    def contribute(
        self, builder: GraphBuilder, context: ContributionContext
    ) -> Sequence[Resource]:
        return ()

    def declare_env(self, context: ContributionContext) -> Mapping[str, str]:
        return {}

    def declare_health_checks(self, context: ContributionContext) -> Mapping[str, HealthCheck]:
        return {}

    def declare_topics(self, context: ContributionContext) -> Sequence[TopicSpec]:
        return ()

    def declare_schemas(self, context: ContributionContext) -> Sequence[SchemaSubject]:
        return ()

    def steps(self, context: ContributionContext) -> Sequence[Step]:
        return ()

    def migrations(self, context: ContributionContext) -> Sequence[Migration]:
        return ()


@dataclass(frozen=True, kw_only=True, slots=True)
class PluginSlice:
    """What one plugin contributed."""

    plugin: str
    contribution: Contribution
    resources: tuple[Resource, ...]
    topics: tuple[TopicSpec, ...]
    schemas: tuple[SchemaSubject, ...]
    env: Mapping[str, str]

    @property
    def api(self) -> Resource | None:
        """The plugin's API: its service named like the plugin, ``<plugin>-api``, or its first."""
        services = [r for r in self.resources if r.kind is ResourceKind.SERVICE or
                    (r.provided_by is not None and r.endpoint("http") is not None)]
        for name in (self.plugin, f"{self.plugin}-api"):
            for resource in services:
                if resource.name == name:
                    return resource
        return services[0] if services else None


@dataclass(frozen=True, kw_only=True, slots=True)
class AppHost:
    """The result of :func:`compose_app_host`: every plugin resource, and who added it."""

    resources: tuple[Resource, ...]
    registry: Mapping[str, PluginSlice]


def compose_app_host(
    builder: GraphBuilder, context: ContributionContext, plugins: Sequence[Contribution]
) -> AppHost:
    """Ask every plugin for its slice of the graph (pass 1: create every resource).

    Raises :class:`DuplicateContributionError` when two contributions name the same plugin and
    :class:`DuplicateResourceError` when two plugins add a resource of the same name.
    """
    registry: dict[str, PluginSlice] = {}
    owners: dict[str, str] = {}
    everything: list[Resource] = []
    for contribution in plugins:
        name = contribution.plugin_name
        if name in registry:
            raise DuplicateContributionError(plugin=name)
        scoped = context.for_plugin(name)
        env = dict(contribution.declare_env(scoped))
        checks = dict(contribution.declare_health_checks(scoped))
        resources: list[Resource] = []
        for resource in contribution.contribute(builder.for_plugin(name, scoped.settings),
                                                scoped):
            if resource.name in owners:
                raise DuplicateResourceError(resource=resource.name,
                                             first=f"plugin {owners[resource.name]!r}",
                                             second=f"plugin {name!r}")
            owners[resource.name] = name
            resources.append(replace(
                resource, plugin=name, env={**env, **resource.env},
                health=checks.pop(resource.name, resource.health)))
        for unknown in sorted(checks):
            raise MissingReferenceError(
                path=(f"plugin {name!r}", "declare_health_checks"), reference=unknown,
                hint=f"a plugin checks only its own resources "
                     f"({', '.join(r.name for r in resources) or 'none'})")
        registry[name] = PluginSlice(
            plugin=name, contribution=contribution, resources=tuple(resources),
            topics=tuple(replace(t, plugin=name) for t in contribution.declare_topics(scoped)),
            schemas=tuple(replace(s, plugin=name)
                          for s in contribution.declare_schemas(scoped)),
            env=env,
        )
        everything.extend(resources)
    return AppHost(resources=tuple(everything), registry=MappingProxyType(registry))
