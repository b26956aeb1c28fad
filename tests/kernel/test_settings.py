"""Settings come from the environment the topology injects."""

from __future__ import annotations

import pytest

from services.kernel import ServiceNotConfiguredError, Settings


def test_reads_the_injected_references() -> None:
    """Every reference the topology wires in lands in a typed field."""
    settings = Settings.from_env("sagas-api", {
        "KAFKA_BOOTSTRAP_SERVERS": "redpanda:9092",
        "SCHEMA_REGISTRY_URL": "http://redpanda:8081",
        "DATABASE_URL": "postgresql://postgres@db/app",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://dashboard:18890",
        "PORT": "8092",
        "services__streams__http__0": "http://streams:4437/",
        "services__workers-api__http__0": "http://workers:8091",
    })
    assert settings.service_name == "sagas-api"
    assert settings.kafka_bootstrap_servers == "redpanda:9092"
    assert settings.schema_registry_url == "http://redpanda:8081"
    assert settings.database_url == "postgresql://postgres@db/app"
    assert settings.otlp_endpoint == "http://dashboard:18890"
    assert settings.port == 8092
    assert settings.service_url("streams") == "http://streams:4437"
    assert settings.service_url("workers-api") == "http://workers:8091"


def test_defaults_to_the_embedded_log() -> None:
    """Without references a process talks to the local embedded log and exports no traces."""
    settings = Settings.from_env("x", {})
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.otlp_endpoint is None
    assert settings.database_url is None


def test_otel_service_name_overrides_the_default_name() -> None:
    """The topology names each resource through OTEL_SERVICE_NAME."""
    assert Settings.from_env("x", {"OTEL_SERVICE_NAME": "users-1"}).service_name == "users-1"


def test_missing_service_reference_names_the_variable() -> None:
    """Asking for an unwired neighbour says which variable to set."""
    with pytest.raises(ServiceNotConfiguredError, match="services__auth-api__http__0"):
        Settings.from_env("x", {}).service_url("auth-api")
