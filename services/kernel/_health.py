"""A health endpoint for a background processor (which has no API of its own).

The topology checks ``/health/ready`` of every resource that has a port; a processor serves
this tiny app once it is ready (a faust worker after its tables are recovered), so answering at
all means ready, and a crashed processor stops answering.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def health_app(service: str) -> Starlette:
    """``/health/live`` and ``/health/ready``, both answering ``{"status": "ok"}``."""

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": service})

    return Starlette(routes=[Route("/health/live", health), Route("/health/ready", health)])


async def serve_health(service: str, *, host: str, port: int) -> None:
    """Serve :func:`health_app` until cancelled."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(health_app(service), host=host, port=port,
                                           log_level="warning", lifespan="off"))
    await server.serve()
