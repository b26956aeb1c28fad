"""Fixtures for the registry tests: the registry on a real port, on the test's own log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.kernel import Settings
from services.kernel.testing import RunningServer, serve_app
from services.log import Broker
from services.registry import RegistryConfig, create_registry_app

V1_JSON = "application/vnd.schemaregistry.v1+json"


def registry_app(bootstrap: str, **config: Any) -> FastAPI:
    """A registry app on the log at ``bootstrap``."""
    settings = Settings.from_env("registry-test", {"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    return create_registry_app(settings, RegistryConfig(**config))


def record(name: str, *fields: dict[str, Any], namespace: str = "test") -> dict[str, Any]:
    """An Avro record schema."""
    return {"type": "record", "name": name, "namespace": namespace, "fields": list(fields)}


def body(schema: Any) -> dict[str, str]:
    """The JSON body Confluent's API takes for a schema."""
    return {"schema": schema if isinstance(schema, str) else json.dumps(schema)}


@pytest.fixture
async def registry_server(broker: Broker) -> AsyncIterator[RunningServer]:
    """The registry on a free port, its state on the test's own broker."""
    async with serve_app(registry_app(broker.bootstrap_servers)) as server:
        yield server


@pytest.fixture
async def api(registry_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the registry that speaks Confluent's content type."""
    async with httpx.AsyncClient(
        base_url=registry_server.url, headers={"Content-Type": V1_JSON, "Accept": V1_JSON},
    ) as client:
        yield client
