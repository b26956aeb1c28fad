"""The values of the resource graph: resources, their endpoints, references and health checks.

A :class:`Resource` is one node: a NetScript process (``service`` or ``background``) or a piece of
infrastructure (``container``, ``database``, ``cache``). It says what it runs, where it listens,
what it references and what it gives to whoever references it (:class:`Export`); the graph turns
all of that into environment variables per target (``netscript up`` or ``compose.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class ResourceKind(StrEnum):
    """The closed set of resource kinds: the graph reasons about nothing else."""

    SERVICE = "service"
    """A process with an HTTP API (a gateway), probed on ``/health/ready``."""
    BACKGROUND = "background"
    """A process without a public API: a stream processor, the embedded log, a one-shot job."""
    CONTAINER = "container"
    """A third-party image: Redpanda, the Aspire dashboard."""
    DATABASE = "database"
    """The SQL database (Postgres)."""
    CACHE = "cache"
    """The shared key-value cache (Redis)."""


class Role(StrEnum):
    """Well-known parts of the graph that references find by role, not by name."""

    LOG = "log"
    DATABASE = "database"
    CACHE = "cache"
    TELEMETRY = "telemetry"


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    """A port a resource listens on.

    ``port`` is where it listens inside the graph's network (in its container, or as a local
    process); ``host_port`` is where the host reaches it (published in ``compose.yaml``, and what
    ``netscript up`` uses for containers it does not run); ``container_port`` is the port inside
    the container that ``host_port`` is published from, when it is not ``port`` (Redpanda's
    external listener).
    """

    name: str = "http"
    port: int
    scheme: str = "http"
    host_port: int | None = None
    container_port: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ProvidedEndpoint:
    """An endpoint one resource serves on behalf of another (Redpanda's schema registry)."""

    resource: str
    endpoint: Endpoint


@dataclass(frozen=True, kw_only=True, slots=True)
class References:
    """What a resource needs from the rest of the graph (the seed's reference vocabulary).

    ``services`` names resources it calls; ``plugins`` names plugin APIs it calls (a plugin name
    stands for that plugin's API service); ``requires_db`` / ``requires_kv`` ask for the
    database and the cache; ``requires_log`` (on by default for NetScript processes) for the log.
    """

    services: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    requires_db: bool = False
    requires_kv: bool = False
    requires_log: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class Export:
    """An environment variable a resource gives to every resource that references it.

    ``template`` may use ``{host}``, ``{port}`` and ``{scheme}`` of ``endpoint`` (default: the
    resource's first endpoint) as the referencing side reaches it, and ``${SECRET}``, which
    ``docker compose`` takes from ``.env`` and ``netscript up`` from the environment or ``.env``.
    """

    env: str
    template: str
    endpoint: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthCheck:
    """How to tell that a resource is ready.

    ``http_path`` is probed with a GET on the resource's ``http`` endpoint (2xx is ready); with
    neither ``http_path`` nor ``command``, a TCP connection to the first endpoint is. ``command``
    runs inside the container (``compose.yaml``'s ``CMD-SHELL`` test).
    """

    http_path: str | None = None
    command: str | None = None
    interval: str = "5s"
    timeout: str = "3s"
    retries: int = 30
    start_period: str = "30s"


@dataclass(frozen=True, kw_only=True, slots=True)
class Secret:
    """A secret a resource needs: it lives in ``.env``, never in ``compose.yaml``."""

    name: str
    description: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicSpec:
    """A topic a plugin owns; ``netscript init`` creates it (an existing one is left alone)."""

    name: str
    partitions: int = 1
    cleanup_policy: str = "delete"
    retention_ms: int | None = None
    configs: Mapping[str, str] = field(default_factory=dict)
    plugin: str | None = None

    def topic_configs(self) -> dict[str, str]:
        """The Kafka topic configs to create it with."""
        configs = {"cleanup.policy": self.cleanup_policy, **self.configs}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


@dataclass(frozen=True, kw_only=True, slots=True)
class SchemaSubject:
    """A schema subject a plugin owns; ``netscript init`` registers ``schema`` under it.

    ``schema`` is the path of an ``.avsc`` file, relative to the app file's folder or, for the
    built-in plugins, to NetScript's own checkout (e.g. ``schemas/streams/ChangeEvent.avsc``).
    """

    subject: str
    schema: Path
    plugin: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Resource:
    """One node of the graph.

    NetScript processes (``image`` is ``None``) run ``command``: arguments of the ``netscript``
    command line, or with ``executable`` set, that program's. In ``command``, ``{host}`` is the
    interface to bind, ``{port}`` the first endpoint's port and ``{data}`` the resource's data
    folder. Containers run ``image``. ``provided_by`` names the resource that actually serves
    this one (Redpanda serves the schema registry in ``compose.yaml``); ``managed=False`` marks
    something outside the graph's control (an external Kafka). ``once`` marks a job that runs to
    completion (``init``); its dependents wait for it to succeed.
    """

    name: str
    kind: ResourceKind
    plugin: str | None = None
    role: Role | None = None
    endpoints: tuple[Endpoint, ...] = ()
    command: tuple[str, ...] = ()
    executable: str | None = None
    image: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    references: References = field(default_factory=References)
    exports: tuple[Export, ...] = ()
    health: HealthCheck | None = None
    secrets: tuple[Secret, ...] = ()
    volume: str | None = None
    replicas: int = 1
    provided_by: str | None = None
    managed: bool = True
    once: bool = False
    description: str = ""

    @property
    def is_process(self) -> bool:
        """Whether this is a NetScript process (run from our image or by ``netscript up``)."""
        return self.image is None and self.kind in (ResourceKind.SERVICE, ResourceKind.BACKGROUND)

    @property
    def port(self) -> int | None:
        """The first endpoint's port, if the resource listens at all."""
        return self.endpoints[0].port if self.endpoints else None

    def endpoint(self, name: str | None = None) -> Endpoint | None:
        """The endpoint called ``name`` (default: the first one)."""
        if name is None:
            return self.endpoints[0] if self.endpoints else None
        return next((e for e in self.endpoints if e.name == name), None)


class Target(StrEnum):
    """Where a graph runs: the same resources, wired for one of two places."""

    LOCAL = "local"
    """``netscript up``: child processes on this machine, containers reached on host ports."""
    COMPOSE = "compose"
    """``compose.yaml``: every resource a container, reached by its service name."""


class WaitFor(StrEnum):
    """What a dependent waits for before it starts."""

    HEALTHY = "healthy"
    COMPLETED = "completed"
    STARTED = "started"


@dataclass(frozen=True, kw_only=True, slots=True)
class Dependency:
    """An edge of the graph: a resource needs ``name`` (``via`` says why) before it starts."""

    name: str
    via: str
    wait: WaitFor
