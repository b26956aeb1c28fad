"""``netscript compose``: compose.yaml is valid, complete, wired like the graph, and current."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from topology import Target, build_graph, load_app_file
from topology._compose import compose_document, merge_env_file, read_env_file, render_compose
from topology._model import Secret

ROOT = Path(__file__).resolve().parents[2]
SPEC_NAME = Path("shared") / "compose-spec" / "compose-spec.json"
PROBE = "tests.topology.probe_plugin:ProbeContribution"
FILES = ("compose.yaml", "compose.cluster.yaml")


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def compose_spec() -> Path | None:
    """The Compose Specification JSON schema: $COMPOSE_SPEC_SCHEMA, or shared/ beside a parent."""
    given = os.environ.get("COMPOSE_SPEC_SCHEMA")
    if given:
        return Path(given)
    for parent in ROOT.parents:
        if (parent / SPEC_NAME).exists():
            return parent / SPEC_NAME
    return None


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    spec = compose_spec()
    if spec is None:
        pytest.skip("the Compose Specification schema was not found: set COMPOSE_SPEC_SCHEMA "
                    "to compose-spec.json (from github.com/compose-spec/compose-spec)")
    return Draft7Validator(json.loads(spec.read_text()))


@pytest.mark.parametrize("name", FILES)
def test_the_checked_in_compose_files_follow_the_compose_specification(
    name: str, validator: Draft7Validator
) -> None:
    """compose.yaml and compose.cluster.yaml validate against the Compose JSON schema."""
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(load(ROOT / name))]
    assert errors == []


@pytest.mark.parametrize(("name", "flags"), [("compose.yaml", []),
                                             ("compose.cluster.yaml", ["--cluster"])])
def test_the_checked_in_compose_files_are_what_netscript_compose_writes(
    name: str, flags: list[str], tmp_path: Path
) -> None:
    """`netscript compose -o` reproduces the checked-in file; run it after changing the graph."""
    out = tmp_path / name
    subprocess.run([sys.executable, "-m", "topology.cli", "compose", *flags, "-o", str(out)],
                   cwd=ROOT, check=True, capture_output=True, timeout=60)
    assert out.read_text() == (ROOT / name).read_text(), (
        f"{name} is stale: run `netscript compose {' '.join(flags)}` and commit it")
    assert "POSTGRES_PASSWORD=" in (tmp_path / ".env").read_text()
    check = subprocess.run([sys.executable, "-m", "topology.cli", "compose", *flags, "--check",
                            "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_every_resource_is_health_checked_and_waits_for_what_it_references() -> None:
    """Health checks everywhere but the dashboard; depends_on gates on health and on init."""
    services = load(ROOT / "compose.yaml")["services"]
    assert set(services) == {"redpanda", "postgres", "aspire-dashboard", "init", "streams",
                             "sagas", "sagas-runtime", "workers", "workers-dispatcher",
                             "workers-pools"}
    assert services["workers"]["ports"] == ["8091:8091"]
    assert services["workers-pools"]["environment"]["services__sagas__http__0"] == (
        "http://sagas:8092")
    assert services["workers-pools"]["depends_on"]["sagas"] == {"condition": "service_healthy"}
    assert services["sagas"]["ports"] == ["8092:8092"]
    assert services["sagas"]["depends_on"]["streams"] == {"condition": "service_healthy"}
    assert services["sagas-runtime"]["depends_on"]["init"] == {
        "condition": "service_completed_successfully"}
    assert services["sagas-runtime"]["environment"]["NETSCRIPT_SAGA_STORE"] == "kv"
    for name, service in services.items():
        if name not in ("aspire-dashboard", "init"):
            assert service["healthcheck"]["test"], name
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"][1]
    assert "rpk cluster health" in services["redpanda"]["healthcheck"]["test"][1]
    assert "/health/ready" in services["streams"]["healthcheck"]["test"][-1]
    assert services["streams"]["depends_on"] == {
        "redpanda": {"condition": "service_healthy"},
        "aspire-dashboard": {"condition": "service_started"},
        "init": {"condition": "service_completed_successfully"},
    }
    assert services["init"]["command"][0] == "init"
    assert services["init"]["environment"]["SCHEMA_REGISTRY_URL"] == "http://redpanda:8081"
    assert services["streams"]["ports"] == ["4437:4437"]
    assert services["streams"]["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert services["aspire-dashboard"]["ports"] == ["18888:18888", "4317:18889", "4318:18890"]
    assert services["streams"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        "http://aspire-dashboard:18890")
    assert set(load(ROOT / "compose.yaml")["volumes"]) == {"redpanda-data", "postgres-data"}


def test_secrets_stay_in_the_env_file(tmp_path: Path) -> None:
    """compose.yaml only references ${POSTGRES_PASSWORD}; .env gets a value, never overwritten."""
    text = (ROOT / "compose.yaml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=mine\nOTHER=1")
    needed = [Secret(name="POSTGRES_PASSWORD", description="db"),
              Secret(name="REDIS_PASSWORD", description="cache")]
    assert merge_env_file(env, needed) == ["REDIS_PASSWORD"]
    values = read_env_file(env)
    assert values["POSTGRES_PASSWORD"] == "mine"
    assert values["OTHER"] == "1"
    assert len(values["REDIS_PASSWORD"]) >= 24
    assert merge_env_file(env, needed) == []
    assert env.stat().st_mode & 0o077 == 0


def test_the_cluster_file_has_three_brokers_replication_three_and_processor_replicas(
    tmp_path: Path, validator: Draft7Validator
) -> None:
    """--cluster: three Redpanda brokers, topics with factor 3, N replicas of each processor."""
    (tmp_path / "netscript.toml").write_text(textwrap.dedent(f"""
        [infrastructure.database]
        [infrastructure.cache]
        kind = "redis"
        [plugins.probe]
        entry = "{PROBE}"
        [plugins.registry]
        [plugins.streams]
        [cluster]
        replicas = 4
    """))
    app = load_app_file(tmp_path / "netscript.toml")
    document = compose_document(build_graph(app, target=Target.COMPOSE, cluster=True))
    assert list(validator.iter_errors(document)) == []
    services = document["services"]
    assert {"redpanda-0", "redpanda-1", "redpanda-2"} <= set(services)
    assert "--seeds=redpanda-0:33145" in services["redpanda-2"]["command"]
    assert services["init"]["command"][-1] == "3"
    assert services["probe-worker"]["deploy"] == {"replicas": 4}
    assert "deploy" not in services["probe-api"]
    assert services["probe-api"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == (
        "redpanda-0:9092,redpanda-1:9092,redpanda-2:9092")
    assert services["probe-api"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "redis-cli ping" in services["redis"]["healthcheck"]["test"][1]
    assert services["redis"]["command"][2].startswith("${REDIS_PASSWORD:?")
    text = render_compose(build_graph(app, target=Target.COMPOSE, cluster=True))
    assert text.startswith("# Generated by `netscript compose --cluster`")
