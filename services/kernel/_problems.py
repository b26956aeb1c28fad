"""RFC 9457 problem details for every error a gateway answers.

Routes raise :class:`ProblemError` (or let FastAPI raise its own ``HTTPException`` and
``RequestValidationError``); these handlers render all of them as ``application/problem+json``,
with the field at fault named in ``errors[].pointer`` for invalid input.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.kernel._errors import ProblemError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type: str = "about:blank",
    instance: str | None = None,
    extensions: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A ``problem+json`` response; ``title`` defaults to the status phrase."""
    body: dict[str, Any] = {
        "type": type,
        "title": title or _phrase(status),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions or {})
    return JSONResponse(body, status_code=status, headers=dict(headers or {}),
                        media_type=PROBLEM_JSON)


def field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic/FastAPI validation errors as ``{"pointer", "field", "message"}`` entries.

    ``pointer`` is a JSON pointer into the request part at fault (``#/body/email``), ``field``
    the dotted location (``body.email``), so a client can attach the message to its form field.
    """
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        out.append({
            "pointer": "#/" + "/".join(loc),
            "field": ".".join(loc),
            "message": str(error.get("msg", "invalid value")),
        })
    return out


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error ``app`` raises as problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(
            exc.status, title=exc.title, detail=exc.detail, type=exc.type,
            instance=request.url.path, extensions=exc.extensions, headers=exc.headers,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail: str | None = exc.detail if isinstance(exc.detail, str) else None
        if detail == _phrase(exc.status_code):
            detail = None
        return problem_response(exc.status_code, detail=detail, instance=request.url.path,
                                headers=exc.headers)

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = field_errors(exc.errors())
        return problem_response(
            422, title="Invalid request",
            detail="; ".join(f"{e['field']}: {e['message']}" for e in errors),
            instance=request.url.path, extensions={"errors": errors},
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, detail="The server failed; the error is in its log.",
                                instance=request.url.path)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_unexpected)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Problem(BaseModel):
    """The problem+json body (RFC 9457), for OpenAPI documents."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem+json answers for ``statuses``."""
    return {
        status: {"model": Problem, "description": _phrase(status),
                 "content": {PROBLEM_JSON: {}}}
        for status in statuses
    }
