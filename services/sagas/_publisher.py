"""``create_saga_publisher``: how a service (a job, a gateway) sends a message to the sagas.

It POSTs to the sagas API's publish endpoint, found through the topology's environment
(``services__sagas__http__0``) unless ``base_url`` is given, and answers with a typed result
instead of raising: :class:`SagaPublisherReceipt` (``published=True``) or
:class:`SagaPublisherRejected` (``published=False``, with ``reason`` and whether a retry may
succeed). Only a missing configuration raises, when the publisher is created.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import httpx
from opentelemetry import propagate

from services.sagas._errors import SagaError
from services.sagas._messages import SagaMessage
from services.sagas._records import message_to_json

DEFAULT_PUBLISH_PATH = "/api/v1/sagas/publish"
DEFAULT_RETRYABLE = (408, 409, 425, 429)
"""Plus every 5xx status."""


class SagaPublisherConfigError(SagaError):
    """The publisher does not know where the sagas API is."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaPublisherReceipt:
    """The sagas API stored the message on the bus; the runtime will apply it."""

    published: Literal[True] = True
    message_type: str
    message_id: str
    partition: int
    offset: int
    position: str
    deliveries: tuple[Mapping[str, Any], ...] = ()
    publisher_id: str = "http-saga-publisher"


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaPublisherRejected:
    """The message was not stored; ``retryable`` says whether sending it again may work."""

    published: Literal[False] = False
    message_type: str
    reason: str
    retryable: bool
    status: int | None = None
    problem: Mapping[str, Any] = field(default_factory=dict)
    publisher_id: str = "http-saga-publisher"


SagaPublishResult = SagaPublisherReceipt | SagaPublisherRejected


class SagaPublisher:
    """Publishes saga messages over HTTP; an async context manager owning its client
    (unless one was passed as ``fetcher``)."""

    def __init__(self, *, url: str, headers: Mapping[str, str], retryable: frozenset[int],
                 publisher_id: str, client: httpx.AsyncClient | None) -> None:
        self.url = url
        self.id = publisher_id
        self._headers = dict(headers)
        self._retryable = retryable
        self._owned = client is None
        self._client = client or httpx.AsyncClient(timeout=30)

    async def __aenter__(self) -> SagaPublisher:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client it created; closing twice is harmless."""
        if self._owned:
            await self._client.aclose()

    async def publish(self, message: SagaMessage | Mapping[str, Any]) -> SagaPublishResult:
        """Send ``message`` (a :class:`SagaMessage` or its JSON form); never raises for a
        refused or undeliverable message."""
        body = message_to_json(message) if isinstance(message, SagaMessage) else dict(message)
        message_type = str(body.get("type", ""))
        headers = dict(self._headers)
        propagate.inject(headers)
        try:
            response = await self._client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return SagaPublisherRejected(
                message_type=message_type, retryable=True, publisher_id=self.id,
                reason=f"the sagas API at {self.url} is unreachable: {exc!r}")
        try:
            data: Any = response.json()
        except ValueError:
            data = {}
        if response.status_code == 202 and isinstance(data, Mapping):
            return SagaPublisherReceipt(
                message_type=message_type, message_id=str(data.get("message_id", "")),
                partition=int(data.get("partition", -1)), offset=int(data.get("offset", -1)),
                position=str(data.get("position", "")),
                deliveries=tuple(data.get("deliveries") or ()), publisher_id=self.id)
        problem = data if isinstance(data, Mapping) else {}
        status = response.status_code
        detail = problem.get("detail") or problem.get("title") or response.reason_phrase
        return SagaPublisherRejected(
            message_type=message_type, status=status, problem=problem, publisher_id=self.id,
            retryable=status in self._retryable or status >= 500,
            reason=f"{status}: {detail}")

    async def publish_many(self, messages: Iterable[SagaMessage | Mapping[str, Any]], *,
                           mode: Literal["sequential", "parallel"] = "sequential"
                           ) -> list[SagaPublishResult]:
        """Publish each message; results are in the order of ``messages``.

        ``sequential`` sends one after the other (the bus keeps their order per instance);
        ``parallel`` sends them at once.
        """
        items = list(messages)
        if mode == "parallel":
            return list(await asyncio.gather(*(self.publish(m) for m in items)))
        if mode != "sequential":
            raise ValueError(f"mode must be 'sequential' or 'parallel', not {mode!r}")
        return [await self.publish(m) for m in items]


def create_saga_publisher(
    *,
    service_name: str = "sagas",
    base_url: str | None = None,
    publish_path: str = DEFAULT_PUBLISH_PATH,
    headers: Mapping[str, str] | None = None,
    retryable_status_codes: Sequence[int] = DEFAULT_RETRYABLE,
    id: str = "http-saga-publisher",
    fetcher: httpx.AsyncClient | None = None,
    read_env: Callable[[], Mapping[str, str]] | None = None,
) -> SagaPublisher:
    """A publisher to the sagas API at ``base_url`` or, by default, at
    ``services__<service_name>__http__0`` from the environment (``read_env`` replaces
    ``os.environ``; ``fetcher`` an ``httpx.AsyncClient`` to send with).

    Raises :class:`SagaPublisherConfigError` when neither gives a URL.
    """
    if base_url is None:
        env = read_env() if read_env is not None else os.environ
        variable = f"services__{service_name}__http__0"
        base_url = env.get(variable) or env.get(f"services__{service_name}__https__0")
        if not base_url:
            raise SagaPublisherConfigError(
                f"no URL for the sagas API: {variable} is not set. Run under the topology "
                "(netscript up / compose.yaml sets it for services that reference the sagas "
                "plugin) or pass base_url=...")
    url = base_url.rstrip("/") + "/" + publish_path.lstrip("/")
    return SagaPublisher(url=url, headers=headers or {}, publisher_id=id, client=fetcher,
                         retryable=frozenset(retryable_status_codes))
