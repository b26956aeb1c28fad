"""A minimal SSE reader for tests: parse events from a live httpx response with a deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """Events of ``response`` as they arrive (comments and keep-alives skipped)."""
    name, data, ident = "message", [], None
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Event(event=name, data="\n".join(data), id=ident)
            name, data, ident = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                ident = value


async def take(stream: AsyncIterator[Event], count: int, *, timeout: float = 10.0) -> list[Event]:
    """The next ``count`` events, failing after ``timeout`` seconds."""
    out: list[Event] = []
    async with asyncio.timeout(timeout):
        async for event in stream:
            out.append(event)
            if len(out) == count:
                break
    return out
