"""The resource graph: every resource of the app, its dependencies and its environment.

:func:`build_graph` works in two passes, as Aspire's AppHost does. Pass 1 creates every
resource: the infrastructure, each plugin's contribution (:func:`compose_app_host`), the app's
own services and the ``init`` job. Pass 2 resolves every reference against the now-known graph
(a reference to a missing resource, or a cycle, fails naming the path) and turns it into
environment variables, so no process discovers its neighbours at run time:

- ``services__<name>__http__0`` for each service or plugin API referenced;
- whatever the referenced resource exports: ``KAFKA_BOOTSTRAP_SERVERS`` (the log),
  ``SCHEMA_REGISTRY_URL`` (the registry), ``DATABASE_URL``, ``REDIS_URL``,
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the dashboard);
- ``OTEL_SERVICE_NAME`` for every NetScript process.

The same graph is resolved for two targets: ``compose`` (resources reach each other by service
name, on the ports they listen on) and ``local`` (``netscript up``: every host is this machine,
processes listen on their locally configured ports, containers are reached on their published
ones). Only addresses differ between the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from topology._appfile import AppFile
from topology._contribution import (
    Contribution,
    ContributionContext,
    GraphBuilder,
    PluginSlice,
    compose_app_host,
)
from topology._errors import (
    DependencyCycleError,
    DuplicateResourceError,
    MissingReferenceError,
    PortConflictError,
    TopologyError,
)
from topology._infrastructure import INIT, app_resources, infrastructure, init_resource
from topology._model import (
    Dependency,
    Resource,
    Role,
    SchemaSubject,
    Target,
    TopicSpec,
    WaitFor,
)
from topology._plugins import load_contribution

LOCAL_HOST = "127.0.0.1"
_ANY = {"0.0.0.0", "::", ""}


@dataclass(frozen=True, kw_only=True, slots=True)
class Node:
    """A resource resolved for one target: its dependencies, command, addresses and env."""

    resource: Resource
    dependencies: tuple[Dependency, ...]
    command: tuple[str, ...]
    host: str
    ports: Mapping[str, int]
    env: Mapping[str, str]
    wiring: Mapping[str, str] = field(default_factory=dict)
    """Which resource each wired environment variable comes from."""
    data_dir: str | None = None

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def port(self) -> int | None:
        """The port of the first endpoint, as others reach it."""
        first = self.resource.endpoint()
        return self.ports[first.name] if first else None

    @property
    def url(self) -> str | None:
        """How to reach the resource: a URL for HTTP endpoints, ``host:port`` otherwise."""
        first = self.resource.endpoint()
        if first is None:
            return None
        address = f"{self.host}:{self.ports[first.name]}"
        return address if first.scheme == "tcp" else f"{first.scheme}://{address}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Graph:
    """The resolved graph of an app for one target, in dependency order."""

    app: AppFile
    target: Target
    cluster: bool
    nodes: tuple[Node, ...]
    registry: Mapping[str, PluginSlice]
    topics: tuple[TopicSpec, ...]
    schemas: tuple[SchemaSubject, ...]

    @property
    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def node(self, name: str) -> Node:
        """The node called ``name``; raises :class:`MissingReferenceError` if there is none."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise MissingReferenceError(path=("the graph",), reference=name,
                                    hint=f"resources: {', '.join(self.names)}")

    def role(self, role: Role) -> Node | None:
        return next((n for n in self.nodes if n.resource.role is role), None)

    def closure(self, names: Iterable[str]) -> tuple[Node, ...]:
        """The nodes ``names`` and everything they depend on, in dependency order."""
        wanted: set[str] = set()
        pending = [self.node(name).name for name in names]
        while pending:
            name = pending.pop()
            if name not in wanted:
                wanted.add(name)
                pending.extend(d.name for d in self.node(name).dependencies)
        return tuple(n for n in self.nodes if n.name in wanted)


def build_graph(
    app: AppFile,
    *,
    target: Target = Target.LOCAL,
    cluster: bool = False,
    host: str = LOCAL_HOST,
    ports: Mapping[str, int] | None = None,
    data_dir: Path | None = None,
    contributions: Sequence[Contribution] | None = None,
) -> Graph:
    """Resolve ``app`` for ``target``.

    ``host`` is the interface local processes bind to, ``ports`` moves resources to other
    local ports (``--port NAME=PORT``), ``data_dir`` holds their data (default: ``.data`` next
    to the app file). ``contributions`` replaces the plugins the app file names (tests).

    Raises the :class:`TopologyError` family: unknown or duplicate plugins and resources,
    missing references, cycles, port conflicts.
    """
    if cluster and target is not Target.COMPOSE:
        raise TopologyError("a cluster graph exists only for compose: use `netscript compose "
                            "--cluster`")
    context = ContributionContext(app=app, target=target, cluster=cluster)
    plugins = (list(contributions) if contributions is not None
               else [load_contribution(entry) for entry in app.plugins])
    # Pass 1: create every resource.
    apphost = compose_app_host(GraphBuilder(), context, plugins)
    resources: list[Resource] = []
    sources: dict[str, str] = {}
    for resource in infrastructure(app, target, cluster=cluster):
        _add(resources, sources, resource, "the infrastructure")
    for resource in apphost.resources:
        _add(resources, sources, resource, f"plugin {resource.plugin!r}")
    for resource in app_resources(app):
        _add(resources, sources, resource, f"netscript.toml ({resource.description.split()[0]})")
    topics = tuple(t for s in apphost.registry.values() for t in s.topics)
    schemas = tuple(s for p in apphost.registry.values() for s in p.schemas)
    if topics or schemas:
        registry = apphost.registry.get("registry")
        wants_registry = bool(schemas) and registry is not None and registry.api is not None
        rf = app.cluster.replication_factor if cluster else 1
        init = init_resource(app, target, replication_factor=rf,
                             registry="registry" if wants_registry else None)
        _add(resources, sources, init, "the infrastructure (init)")
    if ports:
        resources = _move(resources, ports, target)
    # Pass 2: resolve references against the known graph.
    by_name = {r.name: r for r in resources}
    origins = {r.name: _origin(r) for r in resources}
    dependencies = {r.name: _dependencies(r, by_name, origins, apphost.registry)
                    for r in resources}
    if INIT in by_name:
        upstream = _upstream(INIT, dependencies)
        for r in resources:
            if r.is_process and not r.once and r.name not in upstream:
                dependencies[r.name] = (*dependencies[r.name],
                                        Dependency(name=INIT, via="init", wait=WaitFor.COMPLETED))
    order = _order(resources, dependencies)
    addressing = _Addressing(target=target, host=host,
                             data_dir=data_dir or (app.root / ".data"))
    nodes = tuple(addressing.node(by_name[name], dependencies[name], by_name) for name in order)
    _check_ports(nodes, target)
    return Graph(app=app, target=target, cluster=cluster, nodes=nodes,
                 registry=apphost.registry, topics=topics, schemas=schemas)


def _add(resources: list[Resource], sources: dict[str, str], resource: Resource,
         source: str) -> None:
    if resource.name in sources:
        raise DuplicateResourceError(resource=resource.name, first=sources[resource.name],
                                     second=source)
    sources[resource.name] = source
    resources.append(resource)


def _move(resources: list[Resource], ports: Mapping[str, int], target: Target) -> list[Resource]:
    """Apply ``--port NAME=PORT``: a process's first endpoint listens elsewhere."""
    by_name = {r.name: r for r in resources}
    for name in ports:
        resource = by_name.get(name)
        if resource is None or not resource.endpoints or resource.provided_by:
            movable = [r.name for r in resources if r.endpoints and not r.provided_by]
            raise MissingReferenceError(path=("--port",), reference=name,
                                        hint=f"resources with a port: {', '.join(movable)}")
    moved = []
    for resource in resources:
        port = ports.get(resource.name)
        if port is not None:
            first, *rest = resource.endpoints
            if resource.is_process:
                first = replace(first, port=port, host_port=port)
            else:
                first = replace(first, host_port=port)
            resource = replace(resource, endpoints=(first, *rest))
        moved.append(resource)
    return moved


def _origin(resource: Resource) -> str:
    if resource.plugin:
        return f"plugin {resource.plugin!r}"
    if resource.role or resource.name == INIT:
        return "the infrastructure"
    return "netscript.toml"


def _dependencies(
    resource: Resource,
    by_name: Mapping[str, Resource],
    origins: Mapping[str, str],
    registry: Mapping[str, PluginSlice],
) -> tuple[Dependency, ...]:
    refs = resource.references
    path = (origins[resource.name], resource.name)
    found: dict[str, Dependency] = {}

    def add(name: str, via: str, wait: WaitFor) -> None:
        if name != resource.name:
            found.setdefault(name, Dependency(name=name, via=via, wait=wait))

    def by_role(role: Role) -> Resource | None:
        return next((r for r in by_name.values() if r.role is role), None)

    if resource.provided_by:
        if resource.provided_by not in by_name:
            raise MissingReferenceError(path=(*path, "provided_by"), reference=resource.provided_by,
                                        hint="the log this graph runs on serves no such thing")
        add(resource.provided_by, "provided_by", WaitFor.HEALTHY)
    if refs.requires_log and resource.is_process:
        for log in by_name.values():
            if log.role is Role.LOG:
                add(log.name, "log", WaitFor.HEALTHY)
    if refs.requires_db:
        db = by_role(Role.DATABASE)
        if db is None:
            raise MissingReferenceError(
                path=(*path, "requires_db"), reference="database",
                hint='add [infrastructure.database] kind = "postgres" to netscript.toml')
        add(db.name, "requires_db", WaitFor.HEALTHY)
    if refs.requires_kv:
        cache = by_role(Role.CACHE)
        if cache is None:
            raise MissingReferenceError(
                path=(*path, "requires_kv"), reference="cache",
                hint='add [infrastructure.cache] kind = "redis" to netscript.toml')
        add(cache.name, "requires_kv", WaitFor.HEALTHY)
    for name in refs.services:
        if name not in by_name:
            raise MissingReferenceError(
                path=(*path, "service_references"), reference=name,
                hint=f"the graph has {', '.join(sorted(by_name))}; add the service to "
                     f"netscript.toml or install the plugin that provides it")
        add(name, "service_references", WaitFor.HEALTHY)
    for name in refs.plugins:
        target = _plugin_api(name, by_name, registry)
        if target is None:
            raise MissingReferenceError(
                path=(*path, "plugin_references"), reference=name,
                hint=f"installed plugins: {', '.join(sorted(registry)) or 'none'}; install it "
                     f"with [plugins.{name}] in netscript.toml")
        add(target, "plugin_references", WaitFor.HEALTHY)
    # The log is infrastructure and emits no telemetry; everything else reports to the dashboard.
    if resource.is_process and resource.role is not Role.LOG:
        telemetry = by_role(Role.TELEMETRY)
        if telemetry is not None:
            add(telemetry.name, "telemetry", WaitFor.STARTED)
    return tuple(found.values())


def _plugin_api(name: str, by_name: Mapping[str, Resource],
                registry: Mapping[str, PluginSlice]) -> str | None:
    """A plugin reference names a plugin (its API) or one of the plugins' resources."""
    if name in registry:
        api = registry[name].api
        return api.name if api else None
    resource = by_name.get(name)
    return name if resource is not None and resource.plugin else None


def _upstream(name: str, dependencies: Mapping[str, Sequence[Dependency]]) -> set[str]:
    seen: set[str] = set()
    pending = [name]
    while pending:
        for dep in dependencies.get(pending.pop(), ()):
            if dep.name not in seen:
                seen.add(dep.name)
                pending.append(dep.name)
    return seen


def _order(resources: Sequence[Resource],
           dependencies: Mapping[str, Sequence[Dependency]]) -> list[str]:
    """Dependencies first, otherwise in creation order; a cycle fails naming its path."""
    state: dict[str, int] = {}
    order: list[str] = []
    stack: list[str] = []

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise DependencyCycleError(cycle=(*stack[stack.index(name):], name))
        state[name] = 1
        stack.append(name)
        for dep in dependencies[name]:
            visit(dep.name)
        stack.pop()
        state[name] = 2
        order.append(name)

    for resource in resources:
        visit(resource.name)
    return order


@dataclass(frozen=True, kw_only=True, slots=True)
class _Addressing:
    """Where each resource is reached from the others, for one target."""

    target: Target
    host: str
    data_dir: Path

    def host_of(self, resource: Resource) -> str:
        if self.target is Target.COMPOSE:
            return resource.provided_by or resource.name
        return LOCAL_HOST if self.host in _ANY else self.host

    def ports_of(self, resource: Resource) -> dict[str, int]:
        if self.target is Target.COMPOSE:
            return {e.name: e.port for e in resource.endpoints}
        # Locally, processes listen on their own port; containers are reached where published.
        return {e.name: (e.port if resource.is_process else (e.host_port or e.port))
                for e in resource.endpoints}

    def render(self, template: str, resource: Resource, endpoint: str | None) -> str:
        chosen = resource.endpoint(endpoint)
        if chosen is None:
            return template
        return (template.replace("{host}", self.host_of(resource))
                .replace("{port}", str(self.ports_of(resource)[chosen.name]))
                .replace("{scheme}", chosen.scheme))

    def node(self, resource: Resource, dependencies: tuple[Dependency, ...],
             by_name: Mapping[str, Resource]) -> Node:
        env: dict[str, str] = {}
        wiring: dict[str, str] = {}
        for dep in dependencies:
            other = by_name[dep.name]
            if dep.via in ("service_references", "plugin_references"):
                for endpoint in other.endpoints:
                    if endpoint.name in ("http", "https"):
                        key = f"services__{other.name}__{endpoint.scheme}__0"
                        env[key] = self.render("{scheme}://{host}:{port}", other, endpoint.name)
                        wiring[key] = other.name
            if dep.via == "provided_by":
                continue
            for export in other.exports:
                env[export.env] = self.render(export.template, other, export.endpoint)
                wiring[export.env] = other.name
        if resource.is_process:
            env["OTEL_SERVICE_NAME"] = resource.name
        env.update(resource.env)
        data = None
        if resource.volume is not None:
            data = (resource.volume if self.target is Target.COMPOSE
                    else str(self.data_dir / resource.name))
        bind = "0.0.0.0" if self.target is Target.COMPOSE else self.host
        ports = self.ports_of(resource)
        first = resource.endpoint()
        command = tuple(
            arg.replace("{host}", bind)
            .replace("{port}", str(ports[first.name]) if first else "{port}")
            .replace("{data}", data or "{data}")
            for arg in resource.command)
        return Node(resource=resource, dependencies=dependencies, command=command,
                    host=self.host_of(resource), ports=ports, env=env, wiring=wiring,
                    data_dir=data)


def _check_ports(nodes: Sequence[Node], target: Target) -> None:
    """No two resources may take the same port on the host."""
    taken: dict[int, str] = {}
    for node in nodes:
        resource = node.resource
        if resource.provided_by or not resource.managed:
            continue
        for endpoint in resource.endpoints:
            port = (endpoint.host_port if target is Target.COMPOSE or not resource.is_process
                    else node.ports[endpoint.name])
            if port is None:
                continue
            if port in taken and taken[port] != resource.name:
                raise PortConflictError(port=port, resources=(taken[port], resource.name))
            taken[port] = resource.name


def processes(nodes: Iterable[Node]) -> list[Node]:
    """The nodes ``netscript up`` runs as child processes."""
    return [n for n in nodes if n.resource.is_process and n.resource.managed]
