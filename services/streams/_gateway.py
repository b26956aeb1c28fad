"""The protocol's fast path: ``/v1/stream/<path>`` served as plain ASGI, ahead of FastAPI.

Every append and read of the protocol goes straight to :class:`StreamsProtocol` wrapped only in
the CORS/security headers and the secret gate; FastAPI's routing, dependency injection and
exception middleware cost more than the protocol handler itself. Everything else — health,
OpenAPI, views, the reserved ``__ds`` subscription APIs and the lifespan — goes to the FastAPI
app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.kernel import problem_response
from services.streams._errors import LogUnavailableError, StreamRequestError
from services.streams._middleware import StreamsHeaders
from services.streams._protocol import STREAM_PREFIX, StreamsProtocol
from services.streams._subscription_routes import BearerSecretExceptWakeTokens

logger = logging.getLogger(__name__)

_FAST = STREAM_PREFIX + "/"
_RESERVED = STREAM_PREFIX + "/__ds"


class StreamsGateway:
    """The ASGI app uvicorn serves: the protocol fast path plus ``api`` for the rest."""

    def __init__(self, api: FastAPI, protocol: Callable[[], StreamsProtocol],
                 *, secret: str | None) -> None:
        self.api = api
        self._protocol = protocol
        fast: ASGIApp = self._serve
        if isinstance(trace.get_tracer_provider(), TracerProvider):
            # Imported here: only processes that export traces pay for the instrumentation.
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

            fast = OpenTelemetryMiddleware(fast, exclude_spans=["receive", "send"])
        self._fast = StreamsHeaders(BearerSecretExceptWakeTokens(fast, secret=secret))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(_FAST) and not path.startswith(_RESERVED):
            await self._fast(scope, receive, send)
        else:
            await self.api(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        stream_path = scope["path"][len(STREAM_PREFIX):]
        response: Response
        try:
            response = await self._protocol().handle(request, stream_path)
        except StreamRequestError as exc:
            response = problem_response(exc.status, detail=exc.detail,
                                        instance=scope["path"], headers=exc.headers)
        except LogUnavailableError as exc:
            logger.warning("log unavailable: %s", exc)
            response = problem_response(503, detail=str(exc), instance=scope["path"],
                                        headers={"Retry-After": "1"})
        except Exception:
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            response = problem_response(500, detail="The server failed; the error is in its log.",
                                        instance=scope["path"])
        await response(scope, receive, send)
