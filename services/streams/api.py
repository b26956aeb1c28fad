"""The streams gateway (``:4437``): the Durable Streams protocol under ``/v1/stream``.

``create_streams_app`` builds the FastAPI app; its lifespan connects to the log, replays the
catalog, runs the expiry sweeper and the subscription manager (``/v1/stream/__ds``). Health
checks and OpenAPI come from the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.kernel import Settings, create_app, kafka_ready, problem_response
from services.streams._catalog import Catalog
from services.streams._errors import LogUnavailableError, StreamRequestError
from services.streams._gateway import StreamsGateway
from services.streams._log import StreamLog
from services.streams._middleware import StreamsHeaders
from services.streams._protocol import ProtocolOptions, StreamsProtocol
from services.streams._store import StreamStore
from services.streams._subscription_routes import (
    BearerSecretExceptWakeTokens,
    install_subscription_routes,
)
from services.streams._subscriptions import SubscriptionManager
from services.streams._view_routes import add_view_routes
from services.streams._views import Views

logger = logging.getLogger(__name__)

DEFAULT_PORT = 4437
SWEEP_SECONDS = 5.0


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamsConfig:
    """How the streams server runs (read once from the environment by the CLI)."""

    port: int = DEFAULT_PORT
    long_poll_timeout: float = 30.0
    sse_lifetime: float = 60.0
    secret: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StreamsConfig:
        env = os.environ if environ is None else environ
        port = env.get("STREAMS_PORT") or env.get("PORT")
        return cls(
            port=int(port) if port else DEFAULT_PORT,
            secret=env.get("STREAMS_SECRET") or env.get("DURABLE_STREAMS_SECRET") or None,
        )


def create_streams_app(settings: Settings, config: StreamsConfig) -> StreamsGateway:
    """The streams gateway for ``settings``' log (an ASGI app; ``.api`` is its FastAPI part)."""
    holder: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log = StreamLog(settings.kafka_bootstrap_servers, client_id=settings.service_name)
        await log.start()
        try:
            catalog = Catalog(log)
            await catalog.load()
            store = StreamStore(log, catalog)
            holder["views"] = Views(store=store, log=log)
            holder["protocol"] = StreamsProtocol(store, ProtocolOptions(
                long_poll_timeout=config.long_poll_timeout, sse_lifetime=config.sse_lifetime,
                private=config.secret is not None))
            async with SubscriptionManager(store, log) as manager, asyncio.TaskGroup() as tasks:
                holder["subscriptions"] = manager
                sweeper = tasks.create_task(_sweep(store))
                try:
                    yield
                finally:
                    sweeper.cancel()
        finally:
            await log.close()

    async def subscriptions_ready() -> None:
        if "subscriptions" in holder:
            holder["subscriptions"].check_health()

    app = create_app(
        title="NetScript durable streams",
        description="The Durable Streams protocol on the log: every stream is a topic.",
        settings=settings, lifespan=lifespan,
        readiness={"log": kafka_ready(settings), "subscriptions": subscriptions_ready},
    )

    add_view_routes(app, lambda: holder["views"])
    # The reserved __ds control prefix is routed first: it is never an application stream.
    install_subscription_routes(app, lambda: holder["subscriptions"])

    async def on_stream_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StreamRequestError)
        return problem_response(exc.status, detail=exc.detail, instance=request.url.path,
                                headers=exc.headers)

    async def on_log_down(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("log unavailable: %s", exc)
        return problem_response(503, detail=str(exc), instance=request.url.path,
                                headers={"Retry-After": "1"})

    app.add_exception_handler(StreamRequestError, on_stream_error)
    app.add_exception_handler(LogUnavailableError, on_log_down)
    app.add_middleware(BearerSecretExceptWakeTokens, secret=config.secret)
    app.add_middleware(StreamsHeaders)
    return StreamsGateway(app, lambda: holder["protocol"], secret=config.secret)


async def _sweep(store: StreamStore) -> None:
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            await store.sweep()
        except LogUnavailableError as exc:
            logger.warning("expiry sweep skipped: %s", exc)
