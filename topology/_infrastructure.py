"""The resources every app has that no plugin contributes: the log, the database, the cache,
the dashboard, the app's own services from ``netscript.toml`` and the one-shot ``init`` job.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from topology._appfile import AppFile, LogKind
from topology._model import (
    Endpoint,
    Export,
    HealthCheck,
    ProvidedEndpoint,
    References,
    Resource,
    ResourceKind,
    Role,
    Secret,
    Target,
)

NO_LOG = References(requires_log=False)
REDPANDA_REGISTRY = Endpoint(name="http", port=8081, host_port=18081, container_port=18081)
BOOTSTRAP = "KAFKA_BOOTSTRAP_SERVERS"
REDPANDA_HEALTH = "rpk cluster health | grep -E -q 'Healthy:.+true'"
INIT = "init"


def infrastructure(app: AppFile, target: Target, *, cluster: bool = False) -> list[Resource]:
    """The log, database, cache and dashboard of ``app``, as ``target`` runs them."""
    resources = _log(app, target, cluster)
    if app.database is not None:
        db = app.database
        resources.append(Resource(
            name="postgres", kind=ResourceKind.DATABASE, role=Role.DATABASE, image=db.image,
            endpoints=(Endpoint(name="postgres", scheme="postgresql", port=5432,
                                host_port=db.port, container_port=5432),),
            env={"POSTGRES_USER": db.user, "POSTGRES_DB": db.name,
                 "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD}"},
            secrets=(Secret(name="POSTGRES_PASSWORD", description="password of the database "
                                                                  f"user {db.user}"),),
            exports=(Export(env="DATABASE_URL", template=(
                f"postgresql://{db.user}:${{POSTGRES_PASSWORD}}@{{host}}:{{port}}/{db.name}")),),
            health=HealthCheck(command=f"pg_isready -U {db.user} -d {db.name}"),
            references=NO_LOG, volume="/var/lib/postgresql/data",
            description="the database (Postgres)",
        ))
    if app.cache is not None:
        resources.append(Resource(
            name="redis", kind=ResourceKind.CACHE, role=Role.CACHE, image=app.cache.image,
            endpoints=(Endpoint(name="redis", scheme="redis", port=6379,
                                host_port=app.cache.port, container_port=6379),),
            command=("redis-server", "--requirepass", "${REDIS_PASSWORD}", "--appendonly",
                     "yes"),
            env={"REDISCLI_AUTH": "${REDIS_PASSWORD}"},
            secrets=(Secret(name="REDIS_PASSWORD", description="password of the cache"),),
            exports=(Export(env="REDIS_URL",
                            template="redis://:${REDIS_PASSWORD}@{host}:{port}/0"),),
            health=HealthCheck(command="redis-cli ping | grep -q PONG"),
            references=NO_LOG, volume="/data", description="the cache (Redis)",
        ))
    if app.dashboard.enabled:
        resources.append(Resource(
            name="aspire-dashboard", kind=ResourceKind.CONTAINER, role=Role.TELEMETRY,
            image=app.dashboard.image,
            endpoints=(Endpoint(name="http", port=18888, host_port=18888),
                       Endpoint(name="otlp-grpc", port=18889, host_port=4317),
                       Endpoint(name="otlp-http", port=18890, host_port=4318)),
            env={"DOTNET_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS": "true"},
            exports=(Export(env="OTEL_EXPORTER_OTLP_ENDPOINT", template="{scheme}://{host}:{port}",
                            endpoint="otlp-http"),
                     Export(env="OTEL_EXPORTER_OTLP_PROTOCOL", template="http/protobuf")),
            references=NO_LOG,
            description="the Aspire dashboard: traces and logs of every resource (UI :18888)",
        ))
    return resources


def log_schema_registry(app: AppFile, target: Target, *, cluster: bool = False
                        ) -> ProvidedEndpoint | None:
    """The schema registry the log serves itself: Redpanda's (on its first broker), if any."""
    if app.log.kind is LogKind.KAFKA or _runs_embedded(app, target):
        return None
    return ProvidedEndpoint(resource="redpanda-0" if cluster and target is Target.COMPOSE
                            else "redpanda", endpoint=REDPANDA_REGISTRY)


def _runs_embedded(app: AppFile, target: Target) -> bool:
    return target is Target.LOCAL and app.log.kind is LogKind.EMBEDDED


def _log(app: AppFile, target: Target, cluster: bool) -> list[Resource]:
    log = app.log
    if log.kind is LogKind.KAFKA:
        return [Resource(
            name="kafka", kind=ResourceKind.CONTAINER, role=Role.LOG, managed=False,
            exports=(Export(env=BOOTSTRAP, template=log.bootstrap_servers or ""),),
            references=NO_LOG, description="an external Kafka cluster",
        )]
    if _runs_embedded(app, target):
        return [Resource(
            name="log", kind=ResourceKind.BACKGROUND, role=Role.LOG,
            endpoints=(Endpoint(name="kafka", scheme="tcp", port=log.port, host_port=log.port),),
            command=("log", "serve", "--host", "{host}", "--port", "{port}", "--data-dir",
                     "{data}"),
            exports=(Export(env=BOOTSTRAP, template="{host}:{port}"),),
            health=HealthCheck(), references=NO_LOG, volume="/data",
            description="the embedded log (Kafka protocol)",
        )]
    if not (cluster and target is Target.COMPOSE):
        return [_redpanda("redpanda", 0, log.image, seeds=None, bootstrap=None)]
    names = [f"redpanda-{i}" for i in range(app.cluster.brokers)]
    bootstrap = ",".join(f"{name}:9092" for name in names)
    return [_redpanda(name, i, log.image, seeds=None if i == 0 else f"{names[0]}:33145",
                      bootstrap=bootstrap) for i, name in enumerate(names)]


def _redpanda(name: str, index: int, image: str, *, seeds: str | None,
              bootstrap: str | None) -> Resource:
    """One Redpanda broker; the first one is the log's address (and its schema registry).

    Every broker has the log's role: what needs the log waits for all of them, so topics with
    replication factor 3 can be created.
    """
    kafka_port = 19092 + 10_000 * index
    command = [
        "redpanda", "start", "--mode=dev-container", "--smp=1",
        f"--kafka-addr=internal://0.0.0.0:9092,external://0.0.0.0:{kafka_port}",
        f"--advertise-kafka-addr=internal://{name}:9092,external://localhost:{kafka_port}",
        "--schema-registry-addr=internal://0.0.0.0:8081,external://0.0.0.0:18081",
        f"--rpc-addr={name}:33145", f"--advertise-rpc-addr={name}:33145",
    ]
    if seeds:
        command.append(f"--seeds={seeds}")
    endpoints = [Endpoint(name="kafka", scheme="tcp", port=9092, host_port=kafka_port,
                          container_port=kafka_port)]
    if index == 0:
        endpoints.append(replace(REDPANDA_REGISTRY, name="schema-registry"))
    return Resource(
        name=name, kind=ResourceKind.CONTAINER, role=Role.LOG,
        image=image, endpoints=tuple(endpoints), command=tuple(command),
        exports=(Export(env=BOOTSTRAP, template=bootstrap or "{host}:{port}"),)
        if index == 0 else (),
        health=HealthCheck(command=REDPANDA_HEALTH), references=NO_LOG,
        volume="/var/lib/redpanda/data",
        description="the log (Redpanda: Kafka API and schema registry)" if index == 0
        else "a Redpanda broker",
    )


def app_resources(app: AppFile) -> list[Resource]:
    """The app's own services, background processors and apps from ``netscript.toml``."""
    resources = []
    for entry in app.resources:
        endpoints = ((Endpoint(name="http", port=entry.port, host_port=entry.port),)
                     if entry.port else ())
        health_path = entry.health_path or (
            "/health/ready" if entry.kind is ResourceKind.SERVICE else None)
        resources.append(Resource(
            name=entry.name, kind=entry.kind, endpoints=endpoints, command=entry.command,
            executable=entry.executable, references=entry.references, env=dict(entry.env),
            replicas=entry.replicas,
            health=HealthCheck(http_path=health_path) if endpoints else None,
            description=f"[{'services' if entry.port else 'background'}.{entry.name}] in "
                        "netscript.toml",
        ))
    return resources


def init_resource(
    app: AppFile, target: Target, *, replication_factor: int, registry: str | None
) -> Resource:
    """The one-shot job creating the plugins' topics and registering their schemas.

    ``registry`` is the schema registry to reference when subjects are to be registered.
    """
    command = ["init", "--target", target.value, "--replication-factor", str(replication_factor)]
    if target is Target.LOCAL and app.path is not None:
        command += ["--app", str(Path(app.path).resolve())]
    return Resource(
        name=INIT, kind=ResourceKind.BACKGROUND, once=True, command=tuple(command),
        references=References(plugins=(registry,) if registry else ()),
        description="creates the declared topics and registers the declared schemas, then exits",
    )
