"""The resource graph: plugin contributions, the app file, two-pass reference wiring."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.topology.probe_plugin import FixedContribution, ProbeContribution
from topology import (
    AppFile,
    AppFileError,
    ContributionContext,
    DependencyCycleError,
    DuplicateContributionError,
    DuplicateResourceError,
    GraphBuilder,
    MissingReferenceError,
    PluginEntry,
    PortConflictError,
    References,
    Resource,
    ResourceKind,
    Target,
    UnknownPluginError,
    build_graph,
    compose_app_host,
    load_app_file,
    load_contribution,
    parse_app_file,
)
from topology._compose import compose_document

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests.topology.probe_plugin:ProbeContribution"


def app_file(tmp_path: Path, body: str) -> AppFile:
    path = tmp_path / "netscript.toml"
    path.write_text(textwrap.dedent(body))
    return load_app_file(path)


def with_probe(tmp_path: Path, *, database: bool = True) -> AppFile:
    # probe is listed before streams, so its reference to streams resolves only in pass 2.
    return app_file(tmp_path, f"""
        {'[infrastructure.database]' if database else ''}
        [plugins.probe]
        entry = "{PROBE}"
        mode = "fast"
        [plugins.registry]
        [plugins.streams]
    """)


def test_compose_app_host_collects_resources_and_a_registry_keyed_by_plugin() -> None:
    """Every contribution's resources come back, attributed, in a registry by plugin name."""
    context = ContributionContext(app=AppFile(), target=Target.LOCAL)
    host = compose_app_host(GraphBuilder(), context, [ProbeContribution(),
                                                       load_contribution(PluginEntry(name="streams"))])
    assert [r.name for r in host.resources] == ["probe-api", "probe-worker", "streams"]
    assert set(host.registry) == {"probe", "streams"}
    assert [r.plugin for r in host.resources] == ["probe", "probe", "streams"]
    assert host.registry["probe"].api is not None
    assert host.registry["probe"].api.name == "probe-api"
    assert [t.name for t in host.registry["streams"].topics] == ["__netscript_streams"]
    assert host.registry["streams"].topics[0].topic_configs() == {
        "cleanup.policy": "compact", "retention.ms": "-1"}


def test_a_plugin_contributing_twice_is_refused() -> None:
    """Two contributions with one plugin name raise DuplicateContributionError naming it."""
    context = ContributionContext(app=AppFile(), target=Target.LOCAL)
    with pytest.raises(DuplicateContributionError, match="'probe' contributes twice"):
        compose_app_host(GraphBuilder(), context, [ProbeContribution(), ProbeContribution()])


def test_two_plugins_adding_one_resource_name_are_refused() -> None:
    """A resource name claimed by two plugins raises DuplicateResourceError naming both."""
    clash = Resource(name="probe-api", kind=ResourceKind.BACKGROUND, command=("x",))
    context = ContributionContext(app=AppFile(), target=Target.LOCAL)
    with pytest.raises(DuplicateResourceError) as caught:
        compose_app_host(GraphBuilder(), context,
                         [ProbeContribution(), FixedContribution("other", [clash])])
    assert "plugin 'probe'" in str(caught.value)
    assert "plugin 'other'" in str(caught.value)


def test_an_app_service_named_like_a_plugin_resource_is_refused(tmp_path: Path) -> None:
    """[services.streams] next to the streams plugin fails naming both sources."""
    app = app_file(tmp_path, """
        [plugins.streams]
        [services.streams]
        command = ["python", "-m", "mine"]
        port = 3001
    """)
    with pytest.raises(DuplicateResourceError, match=r"plugin 'streams' and netscript.toml"):
        build_graph(app)


def test_adding_and_removing_a_plugin_in_the_app_file_changes_the_graph(tmp_path: Path) -> None:
    """Installing probe adds its API, processor and topic; uninstalling removes them."""
    with_plugin = build_graph(with_probe(tmp_path))
    assert {"probe-api", "probe-worker"} <= set(with_plugin.names)
    assert "probe-events" in [t.name for t in with_plugin.topics]
    (tmp_path / "netscript.toml").write_text("[infrastructure.database]\n"
                                            "[plugins.registry]\n[plugins.streams]\n")
    without = build_graph(load_app_file(tmp_path / "netscript.toml"))
    assert not {"probe-api", "probe-worker"} & set(without.names)
    assert "probe-events" not in [t.name for t in without.topics]
    assert set(with_plugin.names) - set(without.names) == {"probe-api", "probe-worker"}
    no_registry = build_graph(with_probe(tmp_path).without_plugin("registry"))
    assert "registry" not in no_registry.names
    assert "SCHEMA_REGISTRY_URL" not in no_registry.node("init").env


def test_references_are_wired_into_environment_variables_in_two_passes(tmp_path: Path) -> None:
    """A cross-plugin reference (probe-api → streams) and requires_db land in the env."""
    graph = build_graph(with_probe(tmp_path), target=Target.COMPOSE)
    api = graph.node("probe-api")
    assert api.env["services__streams__http__0"] == "http://streams:4437"
    assert api.env["KAFKA_BOOTSTRAP_SERVERS"] == "redpanda:9092"
    assert api.env["DATABASE_URL"] == (
        "postgresql://netscript:${POSTGRES_PASSWORD}@postgres:5432/netscript")
    assert api.env["OTEL_SERVICE_NAME"] == "probe-api"
    assert api.env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://aspire-dashboard:18890"
    assert api.env["PROBE_MODE"] == "fast"
    worker = graph.node("probe-worker")
    assert worker.env["services__probe-api__http__0"] == "http://probe-api:8099"
    assert "DATABASE_URL" not in worker.env
    assert {d.name for d in api.dependencies} >= {"streams", "postgres", "redpanda", "init"}
    order = graph.names
    assert order.index("streams") < order.index("probe-api") < order.index("probe-worker")


def test_the_local_graph_has_the_compose_environment_with_local_addresses(
    tmp_path: Path,
) -> None:
    """netscript up gives each process the variables compose gives it, pointing at 127.0.0.1."""
    app = with_probe(tmp_path)
    local = build_graph(app, target=Target.LOCAL, ports={"streams": 5437})
    compose = build_graph(app, target=Target.COMPOSE)
    for name in ("probe-api", "probe-worker", "streams", "init"):
        assert set(local.node(name).env) == set(compose.node(name).env), name
    api = local.node("probe-api").env
    assert api["services__streams__http__0"] == "http://127.0.0.1:5437"
    assert api["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"
    assert api["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert "@127.0.0.1:5432/" in api["DATABASE_URL"]
    assert local.node("streams").command[-2:] == ("--port", "5437")
    assert local.node("log").command[-1] == str(app.root / ".data" / "log")


def test_the_registry_is_redpandas_in_compose_and_a_process_locally(tmp_path: Path) -> None:
    """On Redpanda, SCHEMA_REGISTRY_URL points at its registry and no registry process runs."""
    app = with_probe(tmp_path)
    compose = build_graph(app, target=Target.COMPOSE)
    assert compose.node("registry").resource.provided_by == "redpanda"
    assert compose.node("init").env["SCHEMA_REGISTRY_URL"] == "http://redpanda:8081"
    assert "registry" not in compose_document(compose)["services"]
    assert "_schemas" not in [t.name for t in compose.topics]
    local = build_graph(app, target=Target.LOCAL)
    assert local.node("registry").resource.is_process
    assert local.node("init").env["SCHEMA_REGISTRY_URL"] == "http://127.0.0.1:8081"
    assert "_schemas" in [t.name for t in local.topics]


def test_a_reference_to_a_missing_resource_names_the_path(tmp_path: Path) -> None:
    """A service reference nobody provides fails with the path from plugin to reference."""
    lost = Resource(name="lost-worker", kind=ResourceKind.BACKGROUND, command=("x",),
                    references=References(services=("nowhere",)))
    app = app_file(tmp_path, "[plugins.streams]\n")
    with pytest.raises(MissingReferenceError) as caught:
        build_graph(app, contributions=[FixedContribution("lost", [lost])])
    assert caught.value.path == ("plugin 'lost'", "lost-worker", "service_references")
    assert "plugin 'lost' → lost-worker → service_references → 'nowhere'" in str(caught.value)


def test_requiring_a_database_the_app_lacks_says_what_to_add(tmp_path: Path) -> None:
    """requires_db without [infrastructure.database] names the path and the table to add."""
    with pytest.raises(MissingReferenceError) as caught:
        build_graph(with_probe(tmp_path, database=False))
    assert "plugin 'probe' → probe-api → requires_db" in str(caught.value)
    assert "[infrastructure.database]" in str(caught.value)


def test_a_plugin_reference_to_an_uninstalled_plugin_fails(tmp_path: Path) -> None:
    """probe references the streams plugin; without it the error names plugin_references."""
    app = with_probe(tmp_path).without_plugin("streams")
    with pytest.raises(MissingReferenceError, match=r"probe-api → plugin_references → 'streams'"):
        build_graph(app)


def test_a_dependency_cycle_fails_naming_the_cycle(tmp_path: Path) -> None:
    """a → b → a cannot start: DependencyCycleError lists the loop."""
    a = Resource(name="a", kind=ResourceKind.BACKGROUND, command=("x",),
                 references=References(services=("b",)))
    b = Resource(name="b", kind=ResourceKind.BACKGROUND, command=("x",),
                 references=References(services=("a",)))
    with pytest.raises(DependencyCycleError) as caught:
        build_graph(app_file(tmp_path, ""), contributions=[FixedContribution("loop", [a, b])])
    assert caught.value.cycle == ("a", "b", "a")
    assert "a → b → a" in str(caught.value)


def test_an_unknown_plugin_lists_the_known_ones(tmp_path: Path) -> None:
    """A plugin neither built in nor registered fails with the names that exist."""
    with pytest.raises(UnknownPluginError) as caught:
        build_graph(app_file(tmp_path, "[plugins.nope]\n"))
    assert {"registry", "streams"} <= set(caught.value.known)
    assert "netscript.plugins" in str(caught.value)


def test_third_party_plugins_are_found_in_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distribution registering netscript.plugins makes its plugin installable by name."""
    dist = tmp_path / "site" / "netscript_probe-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: netscript-probe\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[netscript.plugins]\nprobe = {PROBE}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    app = app_file(tmp_path, "[infrastructure.database]\n[plugins.streams]\n[plugins.probe]\n")
    assert "probe-worker" in build_graph(app).names


def test_ports_move_with_port_overrides_and_conflicts_are_refused(tmp_path: Path) -> None:
    """--port NAME=PORT moves a process; two resources on one port fail naming both."""
    app = app_file(tmp_path, "[plugins.registry]\n[plugins.streams]\n")
    moved = build_graph(app, ports={"streams": 6000, "log": 6001})
    assert moved.node("streams").url == "http://127.0.0.1:6000"
    assert moved.node("registry").env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:6001"
    with pytest.raises(PortConflictError, match="port 8081 is used by registry and streams"):
        build_graph(app, ports={"streams": 8081})
    with pytest.raises(MissingReferenceError, match="--port → 'nope'"):
        build_graph(app, ports={"nope": 1})


def test_app_file_mistakes_name_the_key_at_fault(tmp_path: Path) -> None:
    """A typo or a wrong type in netscript.toml is reported with its table and key."""
    with pytest.raises(AppFileError, match=r"unknown key 'prot' in \[infrastructure.log\]"):
        parse_app_file({"infrastructure": {"log": {"prot": 1}}}, root=tmp_path)
    with pytest.raises(AppFileError, match="bootstrap_servers"):
        parse_app_file({"infrastructure": {"log": {"kind": "kafka"}}}, root=tmp_path)
    with pytest.raises(AppFileError, match=r"\[services.users\] is a service: give it a port"):
        parse_app_file({"services": {"users": {"command": ["python", "-m", "users"]}}},
                       root=tmp_path)


def test_app_services_references_are_normalized(tmp_path: Path) -> None:
    """The app's own services: references deduplicated, one name allowed, flags default off."""
    app = app_file(tmp_path, """
        [plugins.streams]
        [services.users]
        command = ["python", "-m", "myapp.users"]
        port = 3001
        service_references = "streams"
        plugin_references = ["streams", " streams "]
    """)
    users = app.resources[0]
    assert users.references == References(services=("streams",), plugins=("streams",))
    node = build_graph(app).node("users")
    assert node.env["services__streams__http__0"] == "http://127.0.0.1:4437"
    assert node.resource.executable == "python"


def test_the_checked_in_app_file_is_the_default_graph() -> None:
    """netscript.toml at the root holds the log, registry, streams, sagas and workers (plus
    infrastructure)."""
    graph = build_graph(load_app_file(ROOT / "netscript.toml"))
    assert {"log", "registry", "init", "streams", "sagas", "sagas-runtime", "workers",
            "workers-dispatcher", "workers-pools", "postgres",
            "aspire-dashboard"} == set(graph.names)
    assert graph.node("workers").port == 8091
    assert graph.node("workers-pools").env["services__sagas__http__0"] == (
        "http://127.0.0.1:8092")
    assert graph.node("sagas").port == 8092
    assert graph.node("sagas").env["services__streams__http__0"] == "http://127.0.0.1:4437"
    assert graph.node("streams").port == 4437
    assert graph.node("registry").port == 8081
