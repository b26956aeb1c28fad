"""HTTP routes of the reserved control prefix ``/v1/stream/__ds``: subscriptions and the JWKS.

They must be added before the stream catch-all route, so no control path is ever taken for an
application stream; every path under the prefix answers here (unknown ones with 404).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from services.kernel import problem_response
from services.streams._middleware import BearerSecret
from services.streams._protocol import STREAM_PREFIX
from services.streams._subscription_errors import (
    InvalidSubscriptionRequestError,
    SubscriptionError,
    TokenRejectedError,
    UnknownControlRouteError,
)
from services.streams._subscription_model import relative_path
from services.streams._subscription_wire import (
    claim_json,
    parse_config,
    parse_json_object,
    parse_wake_report,
    parse_worker,
    stream_paths,
    subscription_json,
)
from services.streams._subscriptions import SubscriptionManager

CONTROL_PREFIX = STREAM_PREFIX + "/__ds"
JWKS_MEDIA_TYPE = "application/jwk-set+json"
MAX_CONTROL_BODY_BYTES = 1024 * 1024
MAX_SUBSCRIPTION_ID_LENGTH = 256
_ALL_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]
_WAKE_TOKEN_PATH = re.compile(re.escape(CONTROL_PREFIX)
                              + r"/subscriptions/[^/]+/(callback|ack|release)")

Endpoint = Callable[[Request], Awaitable[Response]]


def install_subscription_routes(app: FastAPI, manager: Callable[[], SubscriptionManager]
                                ) -> None:
    """Route ``/v1/stream/__ds/...`` to ``manager()``; call before adding the stream routes."""
    routes = _Routes(manager)
    table: list[tuple[str, Endpoint]] = [
        ("/jwks.json", routes.jwks),
        ("/subscriptions/{subscription_id}", routes.subscription),
        ("/subscriptions/{subscription_id}/streams", routes.streams),
        ("/subscriptions/{subscription_id}/streams/{path:path}", routes.stream),
        ("/subscriptions/{subscription_id}/{action}", routes.action),
        ("", routes.unknown),
        ("/{rest:path}", routes.unknown),
    ]
    for path, endpoint in table:
        # Every method, so a wrong one gets 405 here instead of falling through to the streams.
        app.add_api_route(CONTROL_PREFIX + path, endpoint, methods=_ALL_METHODS,
                          include_in_schema=False)
    app.add_exception_handler(SubscriptionError, _on_subscription_error)


class BearerSecretExceptWakeTokens(BearerSecret):
    """The server's bearer-secret gate, minus the requests a wake token authenticates.

    Callback, ack and release carry the wake's own token in ``Authorization`` (the protocol
    requires it there), so the shared secret cannot be sent as well; their handlers verify that
    token on every request instead. Everything else, claims included, still needs the secret.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            if _WAKE_TOKEN_PATH.fullmatch(path):
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class _Routes:
    def __init__(self, manager: Callable[[], SubscriptionManager]) -> None:
        self._manager = manager

    async def jwks(self, request: Request) -> Response:
        if request.method != "GET":
            return _not_allowed(request, "GET")
        return JSONResponse(self._manager().signing_key.jwks(), media_type=JWKS_MEDIA_TYPE,
                            headers={"Cache-Control": "public, max-age=300"})

    async def subscription(self, request: Request) -> Response:
        subscription_id = _subscription_id(request)
        manager = self._manager()
        kid = manager.signing_key.kid
        if request.method == "PUT":
            config = parse_config(parse_json_object(await _body(request)))
            created, subscription, streams = await manager.put(
                subscription_id, config, stream_root=_stream_root(request))
            headers = {}
            if created:
                headers["Location"] = (f"{_stream_root(request)}__ds/subscriptions/"
                                       f"{quote(subscription_id, safe='')}")
            return JSONResponse(subscription_json(subscription, streams, kid=kid),
                                status_code=201 if created else 200, headers=headers)
        if request.method == "GET":
            subscription, streams = await manager.get(subscription_id)
            return JSONResponse(subscription_json(subscription, streams, kid=kid))
        if request.method == "DELETE":
            await manager.delete(subscription_id)
            return Response(status_code=204)
        return _not_allowed(request, "GET, PUT, DELETE")

    async def streams(self, request: Request) -> Response:
        if request.method != "POST":
            return _not_allowed(request, "POST")
        body = parse_json_object(await _body(request))
        paths = stream_paths(body.get("streams"), field="streams")
        if not paths:
            raise InvalidSubscriptionRequestError("streams must name at least one stream")
        await self._manager().add_streams(_subscription_id(request), paths)
        return Response(status_code=204)

    async def stream(self, request: Request) -> Response:
        if request.method != "DELETE":
            return _not_allowed(request, "DELETE")
        path = relative_path(request.path_params["path"])
        if not path:
            raise InvalidSubscriptionRequestError("name the stream to unlink after /streams/")
        await self._manager().remove_stream(_subscription_id(request), path)
        return Response(status_code=204)

    async def action(self, request: Request) -> Response:
        subscription_id = _subscription_id(request)
        action = request.path_params["action"]
        if action not in ("callback", "claim", "ack", "release"):
            return await self.unknown(request)
        if request.method != "POST":
            return _not_allowed(request, "POST")
        manager = self._manager()
        body = parse_json_object(await _body(request))
        if action == "claim":
            grant = await manager.claim(subscription_id, parse_worker(body))
            return JSONResponse(claim_json(grant))
        token = _bearer(request)
        if action == "release":
            await manager.release(subscription_id, token,
                                  parse_wake_report(body, acks_allowed=False))
            return Response(status_code=204)
        report = parse_wake_report(body)
        if action == "callback":
            next_wake = await manager.callback(subscription_id, token, report)
        else:
            next_wake = await manager.ack(subscription_id, token, report)
        return JSONResponse({"ok": True, "next_wake": next_wake})

    async def unknown(self, request: Request) -> Response:
        raise UnknownControlRouteError(request.url.path)


def _subscription_id(request: Request) -> str:
    subscription_id: str = request.path_params["subscription_id"]
    if len(subscription_id) > MAX_SUBSCRIPTION_ID_LENGTH:
        raise InvalidSubscriptionRequestError(
            f"subscription ids are at most {MAX_SUBSCRIPTION_ID_LENGTH} characters")
    return subscription_id


def _stream_root(request: Request) -> str:
    """The absolute stream root URL the client used (``http://host/v1/stream/``)."""
    return str(request.base_url) + STREAM_PREFIX.lstrip("/") + "/"


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRejectedError("send Authorization: Bearer <token> with the callback_token "
                                 "of the wake (webhook) or the token of the claim (pull-wake)")
    return token.strip()


async def _body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > MAX_CONTROL_BODY_BYTES:
            raise InvalidSubscriptionRequestError(
                f"the body exceeds {MAX_CONTROL_BODY_BYTES} bytes")
        chunks.append(piece)
    return b"".join(chunks)


def _not_allowed(request: Request, allow: str) -> Response:
    return problem_response(405, detail=f"{request.method} is not allowed here; use {allow}",
                            instance=request.url.path, headers={"Allow": allow})


async def _on_subscription_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SubscriptionError)
    headers = {}
    if isinstance(exc, TokenRejectedError):
        headers["WWW-Authenticate"] = 'Bearer realm="subscriptions"'
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
