"""Headers every streams response carries (CORS, browser security) and the bearer-secret gate."""

from __future__ import annotations

import hmac
import json

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

EXPOSED_HEADERS = ", ".join([
    "Stream-Next-Offset", "Stream-Cursor", "Stream-Up-To-Date", "Stream-Closed",
    "Stream-TTL", "Stream-Expires-At", "Stream-SSE-Data-Encoding", "Producer-Epoch",
    "Producer-Seq", "Producer-Expected-Seq", "Producer-Received-Seq", "ETag", "Location",
    "Content-Type", "Retry-After",
])
ALLOWED_HEADERS = ", ".join([
    "Content-Type", "Authorization", "If-None-Match", "Stream-TTL", "Stream-Expires-At",
    "Stream-Seq", "Stream-Closed", "Stream-Forked-From", "Stream-Fork-Offset",
    "Stream-Fork-Sub-Offset", "Producer-Id", "Producer-Epoch", "Producer-Seq",
    "Last-Event-ID",
])
ALLOWED_METHODS = "GET, HEAD, PUT, POST, DELETE, OPTIONS"


class StreamsHeaders:
    """Adds CORS and security headers to every response; answers CORS preflights itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in request_headers:
            headers = MutableHeaders()
            _decorate(headers)
            headers["Access-Control-Max-Age"] = "86400"
            await send({"type": "http.response.start", "status": 204,
                        "headers": headers.raw})
            await send({"type": "http.response.body", "body": b""})
            return

        async def decorated(message: Message) -> None:
            if message["type"] == "http.response.start":
                _decorate(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, decorated)


def _decorate(headers: MutableHeaders) -> None:
    headers["Access-Control-Allow-Origin"] = "*"
    headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Cross-Origin-Resource-Policy"] = "cross-origin"


class BearerSecret:
    """With a secret configured, every request but health checks and preflights needs it."""

    def __init__(self, app: ASGIApp, *, secret: str | None,
                 open_paths: tuple[str, ...] = ("/health/",)) -> None:
        self.app = app
        self._expected = f"Bearer {secret}".encode() if secret else None
        self._open = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._expected is None or scope["type"] != "http"
            or scope["method"] == "OPTIONS" or scope["path"].startswith(self._open)
        ):
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("authorization", "").encode()
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        body = json.dumps({
            "type": "about:blank", "title": "Unauthorized", "status": 401,
            "detail": "send Authorization: Bearer <STREAMS_SECRET>",
            "instance": scope["path"],
        }).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/problem+json"),
            (b"www-authenticate", b'Bearer realm="streams"'),
            (b"content-length", str(len(body)).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})
