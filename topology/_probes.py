"""Readiness probes of ``netscript up``: an HTTP ``GET`` answering 2xx, or a TCP connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import httpx

from topology._graph import Node

POLL_INTERVAL = 0.05


async def tcp_ready(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """Whether ``host:port`` accepts a connection within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def http_ready(client: httpx.AsyncClient, url: str) -> bool:
    """Whether ``GET url`` answers 2xx."""
    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return False
    return response.is_success


async def probe(node: Node, client: httpx.AsyncClient) -> bool:
    """One readiness probe of ``node``: its health path over HTTP, else TCP on its first port.

    A node without endpoints counts as ready once it runs.
    """
    endpoint = node.resource.endpoint()
    if endpoint is None:
        return True
    port = node.ports[endpoint.name]
    check = node.resource.health
    if check is not None and check.http_path is not None:
        return await http_ready(client, f"http://{node.host}:{port}{check.http_path}")
    return await tcp_ready(node.host, port)


async def wait_ready(node: Node, client: httpx.AsyncClient, *, timeout: float) -> bool:
    """Poll :func:`probe` until it succeeds; ``False`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await probe(node, client):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL)


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (as servers do, with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
