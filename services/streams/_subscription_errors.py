"""Errors of the subscription APIs; each answers ``{"error": {"code": ..., "message": ...}}``.

::

    StreamsError
    ├── SubscriptionsUnhealthyError    an actor crashed (fails the readiness check)
    └── SubscriptionError              carries ``code`` and the HTTP ``status``
        ├── InvalidSubscriptionRequestError  INVALID_REQUEST (400)
        ├── WebhookUrlRejectedError    WEBHOOK_URL_REJECTED (400)
        ├── SubscriptionNotFoundError  SUBSCRIPTION_NOT_FOUND (404)
        ├── UnknownControlRouteError   SUBSCRIPTION_NOT_FOUND (404): no such ``__ds`` route
        ├── SubscriptionExistsError    SUBSCRIPTION_ALREADY_EXISTS (409)
        ├── TokenRejectedError         TOKEN_INVALID (401)
        │   └── TokenExpiredError      TOKEN_EXPIRED (401)
        ├── FencedError                FENCED (409): a stale wake_id or generation
        ├── AlreadyClaimedError        ALREADY_CLAIMED (409), with the holder and generation
        ├── NoPendingWorkError         NO_PENDING_WORK (409)
        └── InvalidOffsetError         INVALID_OFFSET (409)
"""

from __future__ import annotations

from typing import Any, ClassVar

from services.streams._errors import StreamsError


class SubscriptionsUnhealthyError(StreamsError):
    """A subscription's actor crashed; its deliveries stopped until the server restarts."""

    def __init__(self, crashed: dict[str, str]) -> None:
        self.crashed = dict(crashed)
        names = ", ".join(f"{k} ({v})" for k, v in sorted(crashed.items()))
        super().__init__(f"subscription actors crashed: {names}; see the server log and "
                         "restart the streams server")


class SubscriptionError(StreamsError):
    """A subscription request the server refuses."""

    code: ClassVar[str] = "INVALID_REQUEST"
    status: ClassVar[int] = 400

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        """The JSON error body the protocol specifies (``{"error": {"code": ...}}``)."""
        return {"error": {"code": self.code, "message": self.message}}


class InvalidSubscriptionRequestError(SubscriptionError):
    """The request body is malformed or incomplete."""


class WebhookUrlRejectedError(SubscriptionError):
    """The webhook URL could reach the server's own network (SSRF guard)."""

    code = "WEBHOOK_URL_REJECTED"

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"webhook.url {url!r} is rejected: {reason}; use a public https:// "
                         "URL (http:// only for localhost or 127.0.0.x in development)")


class SubscriptionNotFoundError(SubscriptionError):
    """No subscription has this id (or it was deleted)."""

    code = "SUBSCRIPTION_NOT_FOUND"
    status = 404

    def __init__(self, subscription_id: str) -> None:
        self.subscription_id = subscription_id
        super().__init__(f"no subscription {subscription_id!r}; create it with PUT first")


class UnknownControlRouteError(SubscriptionError):
    """A path under the reserved ``__ds`` prefix that no control API serves."""

    code = "SUBSCRIPTION_NOT_FOUND"
    status = 404

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} is under the reserved __ds prefix but is no control API; "
                         "application streams cannot live there")


class SubscriptionExistsError(SubscriptionError):
    """A subscription with this id exists with another configuration."""

    code = "SUBSCRIPTION_ALREADY_EXISTS"
    status = 409

    def __init__(self, subscription_id: str) -> None:
        self.subscription_id = subscription_id
        super().__init__(f"subscription {subscription_id!r} exists with another configuration; "
                         "DELETE it first or use another id")


class TokenRejectedError(SubscriptionError):
    """The bearer token is missing, forged, for another subscription or wake, or expired."""

    code = "TOKEN_INVALID"
    status = 401


class TokenExpiredError(TokenRejectedError):
    """The bearer token was genuine but is past its expiry."""

    code = "TOKEN_EXPIRED"


class FencedError(SubscriptionError):
    """The request names a wake that is no longer current."""

    code = "FENCED"
    status = 409

    def __init__(self, *, generation: int) -> None:
        self.generation = generation
        super().__init__(f"the wake is stale (current generation {generation}); stop work on "
                         "it and wait for the next wake")

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message,
                          "generation": self.generation}}


class AlreadyClaimedError(SubscriptionError):
    """Another worker holds the subscription's lease."""

    code = "ALREADY_CLAIMED"
    status = 409

    def __init__(self, *, holder: str, generation: int) -> None:
        self.holder = holder
        self.generation = generation
        super().__init__(f"worker {holder!r} holds generation {generation}; retry after the "
                         "next wake event")

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message,
                          "current_holder": self.holder, "generation": self.generation}}


class NoPendingWorkError(SubscriptionError):
    """A claim found every linked stream acknowledged up to its tail."""

    code = "NO_PENDING_WORK"
    status = 409

    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"subscription {subscription_id!r} has no pending work; claim after "
                         "the next wake event")


class InvalidOffsetError(SubscriptionError):
    """An ack names an unknown stream, a malformed offset, or one outside acked..tail."""

    code = "INVALID_OFFSET"
    status = 409
