"""Test helpers users can reuse: run an ASGI app on a real port with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


@dataclass(frozen=True, kw_only=True, slots=True)
class RunningServer:
    """An app served on ``127.0.0.1:port``."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return f"http://{self.host}:{self.port}"


@contextlib.asynccontextmanager
async def serve_app(app: ASGIApp, *, host: str = "127.0.0.1") -> AsyncIterator[RunningServer]:
    """Serve ``app`` with uvicorn on a free port for the duration of the block.

    The server is accepting connections when the block starts, and has run the app's
    lifespan shutdown when it ends.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            raise RuntimeError("the app failed to start; see its log")
        try:
            yield RunningServer(host=host, port=port)
        finally:
            server.should_exit = True
    sock.close()
