"""The FastAPI app every gateway starts from.

``create_app`` gives a service its health endpoints (``/health/live``: the process answers;
``/health/ready``: every dependency it declared answers too), problem+json errors, OpenAPI, and
server spans for each request when tracing is configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiokafka import AIOKafkaClient
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.kernel._problems import install_problem_handlers, problem_response
from services.kernel._settings import Settings
from services.kernel._tracing import configure_tracing

ReadinessCheck = Callable[[], Awaitable[None]]
"""An async callable that returns when a dependency answers and raises when it does not."""

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]

READINESS_TIMEOUT = 2.0


def kafka_ready(settings: Settings) -> ReadinessCheck:
    """A readiness check that fetches cluster metadata from the log."""

    async def check() -> None:
        client = AIOKafkaClient(bootstrap_servers=settings.kafka_bootstrap_servers,
                                request_timeout_ms=int(READINESS_TIMEOUT * 1000))
        try:
            await client.bootstrap()
        finally:
            await client.close()

    return check


def create_app(
    *,
    title: str,
    settings: Settings,
    description: str = "",
    version: str = "0.1.0",
    readiness: Mapping[str, ReadinessCheck] | None = None,
    lifespan: Lifespan | None = None,
    openapi_tags: list[dict[str, Any]] | None = None,
) -> FastAPI:
    """A FastAPI app with health checks, problem+json errors and tracing.

    ``readiness`` names the checks ``/health/ready`` runs (each bounded by a timeout);
    ``lifespan`` opens and closes the service's own resources.
    """
    checks = dict(readiness or {})
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan,
                  openapi_tags=openapi_tags)
    install_problem_handlers(app)
    configure_tracing(settings)
    # Imported here: instrumentation patches at call time, not at import.
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # One server span per request; the per-message receive/send spans cost more than the
    # request itself on a busy gateway and tell nothing the server span does not.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health/live,health/ready",
                                       exclude_spans=["receive", "send"])

    @app.get("/health/live", tags=["health"], summary="The process is up")
    async def live() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name}

    @app.get("/health/ready", tags=["health"], summary="Every dependency answers",
             responses={503: {"description": "A dependency does not answer"}})
    async def ready() -> JSONResponse:
        results = await _run_checks(checks)
        failed = {name: error for name, error in results.items() if error}
        report = {name: (error or "ok") for name, error in results.items()}
        if failed:
            return problem_response(
                503, title="Not ready",
                detail="dependencies not answering: " + ", ".join(sorted(failed)),
                extensions={"checks": report}, headers={"Retry-After": "1"},
            )
        return JSONResponse({"status": "ready", "checks": report})

    return app


async def _run_checks(checks: Mapping[str, ReadinessCheck]) -> dict[str, str | None]:
    async def run(check: ReadinessCheck) -> str | None:
        try:
            async with asyncio.timeout(READINESS_TIMEOUT):
                await check()
        except TimeoutError:
            return f"no answer within {READINESS_TIMEOUT:g}s"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    names = list(checks)
    results = await asyncio.gather(*(run(checks[name]) for name in names))
    return dict(zip(names, results, strict=True))


