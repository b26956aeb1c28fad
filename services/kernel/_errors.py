"""Errors of the gateway kernel.

::

    NetScriptError
    └── KernelError
        ├── ServiceNotConfiguredError   a services__<name>__http__0 reference is missing
        └── ProblemError                an HTTP error rendered as RFC 9457 problem+json
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services._errors import NetScriptError


class KernelError(NetScriptError):
    """Base class of the kernel's errors."""


class ServiceNotConfiguredError(KernelError):
    """A process asked for a neighbour the topology did not wire in."""

    def __init__(self, *, service: str) -> None:
        self.service = service
        super().__init__(
            f"no URL for service {service!r}: set services__{service}__http__0 (the topology "
            f"does this when the app file references {service!r})"
        )


class ProblemError(KernelError):
    """An HTTP error answered as ``application/problem+json`` (RFC 9457).

    Raise it from a route; the app factory's handler renders it. ``extensions`` become extra
    members of the problem object (e.g. ``{"errors": [...]}`` naming the field at fault), and
    ``headers`` extra response headers.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type: str = "about:blank",
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.extensions = dict(extensions or {})
        self.headers = dict(headers or {})
        super().__init__(f"{status} {title}" + (f": {detail}" if detail else ""))
