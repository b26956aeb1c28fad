"""The app file, ``netscript.toml``: the one declarative description of a NetScript app.

It names the infrastructure (the log, the database, the cache, the dashboard), the installed
plugins with their settings, the app's own services, background processors and apps, and the
cluster shape of ``netscript compose --cluster``. Everything else is derived from it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from topology._errors import AppFileError
from topology._model import References, ResourceKind

APP_FILE = "netscript.toml"
"""The app file's name; it lives at the root of the app (the repository)."""

REDPANDA_IMAGE = "docker.redpanda.com/redpandadata/redpanda:v24.2.7"
POSTGRES_IMAGE = "postgres:16"
REDIS_IMAGE = "redis:7"
DASHBOARD_IMAGE = "mcr.microsoft.com/dotnet/aspire-dashboard:9.0"


class LogKind(StrEnum):
    """Which log the graph runs on."""

    EMBEDDED = "embedded"
    """``netscript up`` runs the embedded log; ``compose.yaml`` runs Redpanda."""
    REDPANDA = "redpanda"
    """Redpanda in both: ``netscript up`` uses the one ``compose.yaml`` publishes on the host."""
    KAFKA = "kafka"
    """An external cluster at ``bootstrap_servers``; neither runner starts a log."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LogSettings:
    """``[infrastructure.log]``."""

    kind: LogKind = LogKind.EMBEDDED
    port: int = 9092
    bootstrap_servers: str | None = None
    image: str = REDPANDA_IMAGE


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseSettings:
    """``[infrastructure.database]``: Postgres."""

    kind: str = "postgres"
    name: str = "netscript"
    user: str = "netscript"
    port: int = 5432
    image: str = POSTGRES_IMAGE


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheSettings:
    """``[infrastructure.cache]``: Redis."""

    kind: str = "redis"
    port: int = 6379
    image: str = REDIS_IMAGE


@dataclass(frozen=True, kw_only=True, slots=True)
class DashboardSettings:
    """``[infrastructure.dashboard]``: the Aspire dashboard every resource sends telemetry to."""

    enabled: bool = True
    image: str = DASHBOARD_IMAGE


@dataclass(frozen=True, kw_only=True, slots=True)
class ClusterSettings:
    """``[cluster]``: the shape of ``netscript compose --cluster``."""

    brokers: int = 3
    replication_factor: int = 3
    replicas: int = 3


@dataclass(frozen=True, kw_only=True, slots=True)
class PluginEntry:
    """``[plugins.<name>]``: an installed plugin and its settings.

    ``entry`` (``"module:attribute"``) loads a plugin that is neither built in nor registered
    in the ``netscript.plugins`` entry-point group. ``settings`` holds every other key; the
    builder applies ``port``, ``replicas`` and ``env``, the plugin reads the rest.
    """

    name: str
    entry: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class AppResourceEntry:
    """``[services.<name>]``, ``[background.<name>]`` or ``[apps.<name>]``: the app's own."""

    name: str
    kind: ResourceKind
    command: tuple[str, ...]
    executable: str | None = None
    port: int | None = None
    references: References = field(default_factory=References)
    env: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1
    health_path: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AppFile:
    """A parsed ``netscript.toml``; ``root`` is the folder relative paths are resolved from."""

    name: str = "netscript"
    root: Path = field(default_factory=Path)
    path: Path | None = None
    log: LogSettings = field(default_factory=LogSettings)
    database: DatabaseSettings | None = None
    cache: CacheSettings | None = None
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    plugins: tuple[PluginEntry, ...] = ()
    resources: tuple[AppResourceEntry, ...] = ()
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    def without_plugin(self, name: str) -> AppFile:
        """This app with plugin ``name`` uninstalled."""
        return replace(self, plugins=tuple(p for p in self.plugins if p.name != name))


def default_app_file(root: Path | None = None) -> AppFile:
    """The app ``netscript up`` runs where there is no ``netscript.toml``: the built-in graph."""
    return AppFile(
        root=root or Path.cwd(),
        plugins=(PluginEntry(name="registry"), PluginEntry(name="streams"),
                 PluginEntry(name="sagas", settings={"store": "kv"}),
                 PluginEntry(name="workers")),
    )


def load_app_file(path: Path) -> AppFile:
    """Read and check ``path``; raises :class:`AppFileError` saying what to fix."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise AppFileError(path=str(path), problem=f"cannot read it ({exc.strerror}); create "
                           f"it (see docs/topology.md) or pass --app PATH") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AppFileError(path=str(path), problem=f"not valid TOML: {exc}") from exc
    return parse_app_file(data, root=path.resolve().parent, path=path)


def parse_app_file(data: Mapping[str, Any], *, root: Path, path: Path | None = None) -> AppFile:
    """Build an :class:`AppFile` from the TOML document ``data``."""
    reader = _Reader(str(path or APP_FILE))
    reader.keys(data, "", {"app", "infrastructure", "plugins", "services", "background", "apps",
                           "cluster"})
    app = reader.table(data, "app")
    reader.keys(app, "app", {"name"})
    infra = reader.table(data, "infrastructure")
    reader.keys(infra, "infrastructure", {"log", "database", "cache", "dashboard"})
    resources: list[AppResourceEntry] = []
    for section, kind in (("services", ResourceKind.SERVICE),
                          ("background", ResourceKind.BACKGROUND),
                          ("apps", ResourceKind.SERVICE)):
        for name, entry in reader.table(data, section).items():
            resources.append(reader.resource(entry, f"{section}.{name}", name, kind))
    return AppFile(
        name=reader.string(app, "app", "name", "netscript"),
        root=root,
        path=path,
        log=reader.log(reader.table(infra, "log", "infrastructure")),
        database=reader.database(infra.get("database"), "infrastructure.database"),
        cache=reader.cache(infra.get("cache"), "infrastructure.cache"),
        dashboard=reader.dashboard(reader.table(infra, "dashboard", "infrastructure")),
        plugins=tuple(reader.plugin(name, entry)
                      for name, entry in reader.table(data, "plugins").items()),
        resources=tuple(resources),
        cluster=reader.cluster(reader.table(data, "cluster")),
    )


def normalize_names(value: Any, where: str, source: str) -> tuple[str, ...]:
    """A reference list as the seed normalizes it: one name or a list, stripped, deduplicated."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise AppFileError(path=source, problem=f"{where} must be a list of resource names")
    seen: dict[str, None] = {}
    for item in items:
        if item.strip():
            seen.setdefault(item.strip(), None)
    return tuple(seen)


class _Reader:
    """Typed access to the TOML document, with errors naming the key at fault."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, problem: str) -> AppFileError:
        return AppFileError(path=self.source, problem=problem)

    def keys(self, table: Mapping[str, Any], where: str, known: set[str]) -> None:
        for key in table:
            if key not in known:
                place = f"[{where}]" if where else "the top level"
                raise self.fail(f"unknown key {key!r} in {place}; known keys: "
                                f"{', '.join(sorted(known))}")

    def table(self, data: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            name = f"{where}.{key}" if where else key
            raise self.fail(f"[{name}] must be a table")
        return value

    def string(self, table: Mapping[str, Any], where: str, key: str, default: str) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{key} in [{where}] must be a non-empty string")
        return value

    def integer(self, table: Mapping[str, Any], where: str, key: str, default: int,
                minimum: int = 1) -> int:
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(f"{key} in [{where}] must be an integer ≥ {minimum}")
        return value

    def boolean(self, table: Mapping[str, Any], where: str, key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key} in [{where}] must be true or false")
        return value

    def env(self, table: Mapping[str, Any], where: str) -> dict[str, str]:
        value = self.table(table, "env", where)
        if not all(isinstance(v, str) for v in value.values()):
            raise self.fail(f"every value of env in [{where}] must be a string")
        return dict(value)

    def log(self, table: Mapping[str, Any]) -> LogSettings:
        where = "infrastructure.log"
        self.keys(table, where, {"kind", "port", "bootstrap_servers", "image"})
        kind_name = self.string(table, where, "kind", LogKind.EMBEDDED.value)
        try:
            kind = LogKind(kind_name)
        except ValueError:
            raise self.fail(f"kind in [{where}] must be one of "
                            f"{', '.join(k.value for k in LogKind)}, not {kind_name!r}") from None
        servers = table.get("bootstrap_servers")
        if kind is LogKind.KAFKA and not isinstance(servers, str):
            raise self.fail(f'kind = "kafka" in [{where}] needs bootstrap_servers = '
                            '"host:port,…", the external cluster to use')
        return LogSettings(kind=kind, port=self.integer(table, where, "port", 9092),
                           bootstrap_servers=servers if isinstance(servers, str) else None,
                           image=self.string(table, where, "image", REDPANDA_IMAGE))

    def database(self, table: Any, where: str) -> DatabaseSettings | None:
        if table is None:
            return None
        if not isinstance(table, Mapping):
            raise self.fail(f"[{where}] must be a table")
        self.keys(table, where, {"kind", "name", "user", "port", "image"})
        kind = self.string(table, where, "kind", "postgres")
        if kind != "postgres":
            raise self.fail(f'kind in [{where}] must be "postgres", not {kind!r}')
        return DatabaseSettings(name=self.string(table, where, "name", "netscript"),
                                user=self.string(table, where, "user", "netscript"),
                                port=self.integer(table, where, "port", 5432),
                                image=self.string(table, where, "image", POSTGRES_IMAGE))

    def cache(self, table: Any, where: str) -> CacheSettings | None:
        if table is None:
            return None
        if not isinstance(table, Mapping):
            raise self.fail(f"[{where}] must be a table")
        self.keys(table, where, {"kind", "port", "image"})
        kind = self.string(table, where, "kind", "redis")
        if kind != "redis":
            raise self.fail(f'kind in [{where}] must be "redis", not {kind!r}')
        return CacheSettings(port=self.integer(table, where, "port", 6379),
                             image=self.string(table, where, "image", REDIS_IMAGE))

    def dashboard(self, table: Mapping[str, Any]) -> DashboardSettings:
        where = "infrastructure.dashboard"
        self.keys(table, where, {"enabled", "image"})
        return DashboardSettings(enabled=self.boolean(table, where, "enabled", True),
                                 image=self.string(table, where, "image", DASHBOARD_IMAGE))

    def cluster(self, table: Mapping[str, Any]) -> ClusterSettings:
        self.keys(table, "cluster", {"brokers", "replication_factor", "replicas"})
        brokers = self.integer(table, "cluster", "brokers", 3)
        factor = self.integer(table, "cluster", "replication_factor", 3)
        if factor > brokers:
            raise self.fail(f"replication_factor ({factor}) in [cluster] cannot exceed brokers "
                            f"({brokers})")
        return ClusterSettings(brokers=brokers, replication_factor=factor,
                               replicas=self.integer(table, "cluster", "replicas", 3))

    def plugin(self, name: str, table: Any) -> PluginEntry:
        where = f"plugins.{name}"
        if not isinstance(table, Mapping):
            raise self.fail(f"[{where}] must be a table (an empty one installs the plugin)")
        entry = table.get("entry")
        if entry is not None and (not isinstance(entry, str) or ":" not in entry):
            raise self.fail(f'entry in [{where}] must be "module:attribute"')
        if "port" in table:
            self.integer(table, where, "port", 1)
        if "replicas" in table:
            self.integer(table, where, "replicas", 1)
        if "env" in table:
            self.env(table, where)
        settings = {k: v for k, v in table.items() if k != "entry"}
        return PluginEntry(name=name, entry=entry, settings=settings)

    def resource(self, table: Any, where: str, name: str,
                 kind: ResourceKind) -> AppResourceEntry:
        if not isinstance(table, Mapping):
            raise self.fail(f"[{where}] must be a table")
        self.keys(table, where, {"command", "port", "service_references", "plugin_references",
                                 "requires_db", "requires_kv", "env", "replicas", "health"})
        command = table.get("command")
        if (not isinstance(command, list) or not command
                or not all(isinstance(c, str) for c in command)):
            raise self.fail(f'command in [{where}] must be a list of strings, e.g. '
                            f'["python", "-m", "myapp.{name}"]')
        executable: str | None = command[0]
        args: Sequence[str] = command[1:]
        if executable == "netscript":
            executable = None
        port = table.get("port")
        if port is not None:
            port = self.integer(table, where, "port", 1)
        health = table.get("health")
        if health is not None and (not isinstance(health, str) or not health.startswith("/")):
            raise self.fail(f'health in [{where}] must be a path such as "/health/ready"')
        if kind is ResourceKind.SERVICE and port is None:
            raise self.fail(f"[{where}] is a service: give it a port")
        return AppResourceEntry(
            name=name, kind=kind, command=tuple(args), executable=executable, port=port,
            references=References(
                services=normalize_names(table.get("service_references"),
                                         f"service_references in [{where}]", self.source),
                plugins=normalize_names(table.get("plugin_references"),
                                        f"plugin_references in [{where}]", self.source),
                requires_db=self.boolean(table, where, "requires_db", False),
                requires_kv=self.boolean(table, where, "requires_kv", False),
            ),
            env=self.env(table, where),
            replicas=self.integer(table, where, "replicas", 1),
            health_path=health,
        )
