"""Webhook delivery: URL validation against SSRF, signed POSTs, and the retry schedule.

A webhook URL must be public ``https://``; plain ``http://`` is allowed only for ``localhost``
and ``127.0.0.x`` (development). IP literals in private, loopback, link-local (cloud metadata
lives at ``169.254.169.254``), shared or reserved ranges are refused when the subscription is
created, and host names are resolved again before every delivery, so a name that later points
at the internal network is refused too. Redirects are never followed: a 3xx is a failure.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import re
import socket
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import httpx

from services.streams._subscription_errors import WebhookUrlRejectedError

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
RETRY_JITTER = 0.2
DELIVERY_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 64 * 1024

_DEV_LOOPBACK = re.compile(r"^127\.0\.0\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$")
_METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "instance-data"})
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def validate_webhook_url(url: str) -> None:
    """Refuse a webhook URL that is not public https (or the localhost development exception).

    Raises :class:`WebhookUrlRejectedError`.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        _ = parts.port  # a malformed port raises here
    except ValueError as exc:
        raise WebhookUrlRejectedError(url, "it is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise WebhookUrlRejectedError(url, "it must be an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlRejectedError(url, "it must not carry credentials")
    if parts.scheme == "http":
        if is_dev_host(host):
            return
        raise WebhookUrlRejectedError(url, "http:// is allowed only for localhost or 127.0.0.x")
    if host == "localhost" or host in _METADATA_HOSTS or host.endswith(_LOCAL_SUFFIXES):
        raise WebhookUrlRejectedError(url, f"{host} is a local network name")
    address = _ip_literal(host)
    if address is not None and not _public(address):
        raise WebhookUrlRejectedError(
            url, f"{address} is a private, loopback, link-local or reserved address")


def is_dev_host(host: str) -> bool:
    """``localhost`` or ``127.0.0.x``: the development exception to the https rule."""
    return host == "localhost" or _DEV_LOOPBACK.match(host) is not None


def _ip_literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-FxX.]+", host):
        # Resolvers accept legacy IPv4 spellings ("127.1", "2130706433", "0x7f000001").
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _public(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def _ensure_public_target(url: str) -> None:
    """Resolve the URL's host now and refuse it if any address is not public."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme == "http" and is_dev_host(host):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_rest, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if not _public(address):
            raise WebhookUrlRejectedError(url, f"{host} resolves to {address}")


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempts`` (1, 2, 4 … 60 s, each ±20 %)."""
    base = min(FIRST_RETRY_SECONDS * 2.0 ** max(0, attempts - 1), MAX_RETRY_SECONDS)
    uniform = rng.uniform if rng is not None else random.uniform
    jitter = uniform(-RETRY_JITTER, RETRY_JITTER)
    return base * (1 + jitter)


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """How one webhook POST ended."""

    accepted: bool  # the receiver answered 2xx
    done: bool = False  # ... with {"done": true}: the wake is finished
    detail: str = ""  # why it was not accepted


class WebhookSender:
    """Posts signed wake notifications; owns its HTTP client."""

    def __init__(self, *, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> None:
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def deliver(self, url: str, body: bytes, *, signature: str) -> Delivery:
        """POST ``body`` to ``url``; never raises for the receiver's or the network's failures."""
        try:
            await _ensure_public_target(url)
        except (OSError, WebhookUrlRejectedError) as exc:
            return Delivery(accepted=False, detail=str(exc))
        headers = {"Content-Type": "application/json", "Webhook-Signature": signature}
        try:
            async with self._client.stream("POST", url, content=body,
                                           headers=headers) as response:
                answer = b""
                async for piece in response.aiter_bytes():
                    answer += piece
                    if len(answer) > MAX_RESPONSE_BYTES:
                        break
        except httpx.HTTPError as exc:
            return Delivery(accepted=False, detail=f"{type(exc).__name__}: {exc}")
        if not response.is_success:
            return Delivery(accepted=False, detail=f"HTTP {response.status_code}")
        return Delivery(accepted=True, done=_says_done(answer))


def _says_done(answer: bytes) -> bool:
    try:
        value = json.loads(answer)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(value, dict) and value.get("done") is True
