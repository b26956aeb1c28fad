"""Service settings, read from the environment once, at the edge.

The topology wires every reference into environment variables (Aspire's naming), so no process
discovers its neighbours at run time: ``services__<name>__http__0`` for a service's base URL,
``KAFKA_BOOTSTRAP_SERVERS``, ``SCHEMA_REGISTRY_URL``, ``DATABASE_URL`` and the ``OTEL_*`` family.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.kernel._errors import ServiceNotConfiguredError

_SERVICE_URL = re.compile(r"^services__(?P<name>[^_].*?)__(?P<scheme>https?)__(?P<index>\d+)$")

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """What a NetScript process needs to know about its surroundings."""

    service_name: str
    kafka_bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    schema_registry_url: str | None = None
    database_url: str | None = None
    otlp_endpoint: str | None = None
    port: int | None = None
    service_urls: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(
        cls, service_name: str, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Read the settings of ``service_name`` from ``environ`` (default: ``os.environ``).

        ``OTEL_SERVICE_NAME``, when set, overrides ``service_name`` so the topology names
        every resource in the dashboard.
        """
        env = os.environ if environ is None else environ
        urls: dict[str, str] = {}
        # Lowest index of each service wins; http is preferred over https for in-cluster calls.
        for key in sorted(env):
            match = _SERVICE_URL.match(key)
            if match and env[key]:
                urls.setdefault(match["name"], env[key].rstrip("/"))
        port = env.get("PORT")
        return cls(
            service_name=env.get("OTEL_SERVICE_NAME") or service_name,
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP_SERVERS,
            schema_registry_url=env.get("SCHEMA_REGISTRY_URL") or None,
            database_url=env.get("DATABASE_URL") or None,
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            port=int(port) if port else None,
            service_urls=urls,
        )

    def service_url(self, name: str) -> str:
        """The base URL of the service ``name``, as the topology injected it."""
        try:
            return self.service_urls[name]
        except KeyError:
            raise ServiceNotConfiguredError(service=name) from None
