"""An async client of any Confluent-compatible schema registry (ours, Confluent's, Redpanda's).

Schemas by id never change, so they are cached for the client's life; a subject's latest
version is cached for ``latest_ttl`` seconds, so a newly registered version is picked up soon
without a request per encoded record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from services.registry._errors import (
    API_ERRORS,
    IncompatibleSchemaError,
    RegistryApiError,
    RegistryUnavailableError,
)

DEFAULT_URL = "http://127.0.0.1:8081"
_ACCEPT = "application/vnd.schemaregistry.v1+json, application/json"
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass(frozen=True, kw_only=True, slots=True)
class RegisteredSchema:
    """A subject's version: its number, the schema's global id and its text."""

    subject: str
    version: int
    schema_id: int
    schema: str


class RegistryClient:
    """``async with RegistryClient(url) as registry: await registry.latest("orders-value")``.

    Raises :class:`RegistryUnavailableError` when the registry does not answer, and the
    :class:`RegistryApiError` subclass matching Confluent's ``error_code`` when it refuses.
    ``transport`` lets tests route requests to an in-process app (``httpx.ASGITransport``).
    """

    def __init__(
        self, url: str = DEFAULT_URL, *, timeout: float = 10.0, latest_ttl: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._latest_ttl = latest_ttl
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout, transport=transport,
            headers={"Accept": _ACCEPT},
        )
        self._schemas: dict[int, str] = {}
        self._latest: dict[str, tuple[float, RegisteredSchema]] = {}
        self._state = "new"

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError("a RegistryClient cannot be reopened; create a new one")
        self._state = "open"
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections; closing twice is harmless."""
        if self._state != "closed":
            self._state = "closed"
            await self._http.aclose()

    # ------------------------------------------------------------------ reads

    async def schema(self, schema_id: int) -> str:
        """The text of schema ``schema_id`` (cached: ids never change meaning)."""
        text = self._schemas.get(schema_id)
        if text is None:
            body = await self._request("GET", f"/schemas/ids/{schema_id}")
            text = self._schemas[schema_id] = str(body["schema"])
        return text

    async def latest(self, subject: str) -> RegisteredSchema:
        """The subject's latest version (cached for ``latest_ttl`` seconds)."""
        cached = self._latest.get(subject)
        if cached is not None and time.monotonic() - cached[0] < self._latest_ttl:
            return cached[1]
        found = await self.version(subject, "latest")
        self._latest[subject] = (time.monotonic(), found)
        return found

    async def version(self, subject: str, version: int | str) -> RegisteredSchema:
        """One version of ``subject`` (a number or ``"latest"``)."""
        body = await self._request(
            "GET", f"/subjects/{_segment(subject)}/versions/{version}", subject=subject)
        found = RegisteredSchema(subject=str(body["subject"]), version=int(body["version"]),
                                 schema_id=int(body["id"]), schema=str(body["schema"]))
        self._schemas.setdefault(found.schema_id, found.schema)
        return found

    async def subjects(self) -> list[str]:
        """Every subject with a live version."""
        return [str(subject) for subject in await self._request("GET", "/subjects")]

    # ------------------------------------------------------------------ writes

    async def register(self, subject: str, schema: str | Mapping[str, Any] | list[Any]) -> int:
        """Register ``schema`` (text or decoded JSON) under ``subject``; returns its id."""
        text = schema if isinstance(schema, str) else json.dumps(schema)
        body = await self._request("POST", f"/subjects/{_segment(subject)}/versions",
                                   json_body={"schema": text}, subject=subject)
        self._latest.pop(subject, None)
        return int(body["id"])

    async def set_compatibility(self, level: str, subject: str | None = None) -> str:
        """Set the compatibility level of ``subject`` (``None``: the global level)."""
        path = "/config" if subject is None else f"/config/{_segment(subject)}"
        body = await self._request("PUT", path, json_body={"compatibility": level},
                                   subject=subject)
        return str(body["compatibility"])

    # ------------------------------------------------------------------ plumbing

    async def _request(
        self, method: str, path: str, *, json_body: Any = None, subject: str | None = None,
    ) -> Any:
        if self._state != "open":
            raise RuntimeError("the RegistryClient is not open; use it as an async context "
                               "manager")
        content = None if json_body is None else json.dumps(json_body).encode()
        headers = {} if content is None else {"Content-Type": _CONTENT_TYPE}
        try:
            response = await self._http.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise RegistryUnavailableError(url=self.url, reason=str(exc) or
                                           type(exc).__name__) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return body
        raise _api_error(response.status_code, body, subject)


def _segment(subject: str) -> str:
    return quote(subject, safe="")


def _api_error(status: int, body: Any, subject: str | None) -> RegistryApiError:
    code = body.get("error_code") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    text = str(message or f"HTTP {status} from the schema registry")
    error_class = API_ERRORS.get(code) if isinstance(code, int) else None
    if error_class is IncompatibleSchemaError:
        return IncompatibleSchemaError(text, subject=subject)
    if error_class is not None:
        return error_class(text, subject=subject)
    return RegistryApiError(text, subject=subject, status=status,
                            error_code=code if isinstance(code, int) else status)
