"""The subscription APIs' JSON: request bodies parsed into values (400 INVALID_REQUEST on
anything malformed) and values rendered as the protocol's response and webhook bodies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from services.streams._offsets import format_offset
from services.streams._subscription_errors import InvalidSubscriptionRequestError
from services.streams._subscription_model import (
    DEFAULT_LEASE_TTL_MS,
    MAX_LEASE_TTL_MS,
    MIN_LEASE_TTL_MS,
    StreamInfo,
    Subscription,
    SubscriptionConfig,
    is_reserved,
    relative_path,
)
from services.streams._webhooks import validate_webhook_url

CONTROL_ROOT = "__ds/"


@dataclass(frozen=True, kw_only=True, slots=True)
class Ack:
    """``{"stream": ..., "offset": ...}``: everything before ``offset`` is processed."""

    stream: str
    offset: str


@dataclass(frozen=True, kw_only=True, slots=True)
class WakeReport:
    """The body of a callback, ack or release: which wake, what is processed, finished or not."""

    wake_id: str
    generation: int
    acks: tuple[Ack, ...] = ()
    done: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class ClaimGrant:
    """A successful pull-wake claim."""

    wake_id: str
    generation: int
    token: str
    streams: tuple[StreamInfo, ...]
    lease_ttl_ms: int


# ---------------------------------------------------------------------- requests


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (an empty body is ``{}``)."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSubscriptionRequestError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidSubscriptionRequestError("the body must be a JSON object")
    return value


def stream_paths(value: Any, *, field: str) -> tuple[str, ...]:
    """A list of stream-root-relative paths, normalized, unique and sorted."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidSubscriptionRequestError(f"{field} must be an array of stream paths")
    paths = {relative_path(v) for v in value}
    for path in paths:
        if not path:
            raise InvalidSubscriptionRequestError(f"{field} must not contain empty paths")
        if is_reserved(path):
            raise InvalidSubscriptionRequestError(
                f"{path!r} is under the reserved __ds prefix, not an application stream")
    return tuple(sorted(paths))


def parse_config(body: dict[str, Any]) -> SubscriptionConfig:
    """The configuration of ``PUT __ds/subscriptions/{id}`` (the webhook URL is validated)."""
    kind = body.get("type")
    if kind not in ("webhook", "pull-wake"):
        raise InvalidSubscriptionRequestError('type must be "webhook" or "pull-wake"')
    pattern = body.get("pattern")
    if pattern is not None and not isinstance(pattern, str):
        raise InvalidSubscriptionRequestError("pattern must be a string")
    pattern = relative_path(pattern) if pattern else None
    streams = stream_paths(body.get("streams") or [], field="streams")
    if not pattern and not streams:
        raise InvalidSubscriptionRequestError("send a pattern, streams, or both")
    lease = body.get("lease_ttl_ms", DEFAULT_LEASE_TTL_MS)
    if (not isinstance(lease, int) or isinstance(lease, bool)
            or not MIN_LEASE_TTL_MS <= lease <= MAX_LEASE_TTL_MS):
        raise InvalidSubscriptionRequestError(
            f"lease_ttl_ms must be an integer from {MIN_LEASE_TTL_MS} to {MAX_LEASE_TTL_MS}")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidSubscriptionRequestError("description must be a string")
    webhook_url: str | None = None
    wake_stream: str | None = None
    if kind == "webhook":
        webhook = body.get("webhook")
        url = webhook.get("url") if isinstance(webhook, dict) else None
        if not isinstance(url, str) or not url:
            raise InvalidSubscriptionRequestError("a webhook subscription needs webhook.url")
        validate_webhook_url(url)
        webhook_url = url
    else:
        stream = body.get("wake_stream")
        if not isinstance(stream, str) or not relative_path(stream):
            raise InvalidSubscriptionRequestError("a pull-wake subscription needs wake_stream")
        wake_stream = relative_path(stream)
        if is_reserved(wake_stream):
            raise InvalidSubscriptionRequestError("wake_stream must be an application stream")
    return SubscriptionConfig(type=kind, pattern=pattern, streams=streams,
                              webhook_url=webhook_url, wake_stream=wake_stream,
                              lease_ttl_ms=lease, description=description)


def parse_wake_report(body: dict[str, Any], *, acks_allowed: bool = True) -> WakeReport:
    wake_id = body.get("wake_id")
    generation = body.get("generation")
    if not isinstance(wake_id, str) or not isinstance(generation, int) or isinstance(
            generation, bool):
        raise InvalidSubscriptionRequestError(
            "send the wake_id and generation of the wake being reported")
    raw_acks = body.get("acks") if acks_allowed else None
    if raw_acks is None:
        raw_acks = []
    if not isinstance(raw_acks, list):
        raise InvalidSubscriptionRequestError("acks must be an array")
    acks = []
    for item in raw_acks:
        stream = item.get("stream", item.get("path")) if isinstance(item, dict) else None
        offset = item.get("offset") if isinstance(item, dict) else None
        if not isinstance(stream, str) or not isinstance(offset, str):
            raise InvalidSubscriptionRequestError(
                'each ack must be {"stream": "<path>", "offset": "<offset>"}')
        acks.append(Ack(stream=relative_path(stream), offset=offset))
    done = body.get("done", False)
    if not isinstance(done, bool):
        raise InvalidSubscriptionRequestError("done must be a boolean")
    return WakeReport(wake_id=wake_id, generation=generation, acks=tuple(acks), done=done)


def parse_worker(body: dict[str, Any]) -> str:
    worker = body.get("worker")
    if not isinstance(worker, str) or not worker:
        raise InvalidSubscriptionRequestError("worker must be a non-empty string")
    return worker


# ---------------------------------------------------------------------- responses


def action_url(subscription: Subscription, action: str) -> str:
    return (f"{subscription.stream_root}{CONTROL_ROOT}subscriptions/"
            f"{quote(subscription.id, safe='')}/{action}")


def jwks_url(stream_root: str) -> str:
    return f"{stream_root}{CONTROL_ROOT}jwks.json"


def stream_info_json(info: StreamInfo) -> dict[str, Any]:
    return {"path": info.path, "link_type": info.link_type,
            "acked_offset": format_offset(info.acked), "tail_offset": format_offset(info.tail),
            "has_pending": info.has_pending}


def subscription_json(
    subscription: Subscription, streams: Sequence[StreamInfo], *, kid: str
) -> dict[str, Any]:
    """The body of ``GET __ds/subscriptions/{id}`` (and of a successful PUT)."""
    config = subscription.config
    webhook = None
    if config.webhook_url is not None:
        webhook = {"url": config.webhook_url, "signing": {
            "alg": "ed25519", "kid": kid, "jwks_url": jwks_url(subscription.stream_root)}}
    return {
        "id": subscription.id, "subscription_id": subscription.id, "type": config.type,
        "pattern": config.pattern,
        "streams": [{"path": s.path, "link_type": s.link_type,
                     "acked_offset": format_offset(s.acked)} for s in streams],
        "webhook": webhook, "wake_stream": config.wake_stream,
        "lease_ttl_ms": config.lease_ttl_ms, "created_at": subscription.created_at,
        "status": subscription.status, "description": config.description,
    }


def webhook_body(subscription: Subscription, streams: Sequence[StreamInfo], *, token: str
                 ) -> bytes:
    """The signed body of a webhook wake notification."""
    assert subscription.wake is not None
    return json.dumps({
        "subscription_id": subscription.id, "wake_id": subscription.wake.wake_id,
        "generation": subscription.generation,
        "streams": [stream_info_json(s) for s in streams],
        "callback_url": action_url(subscription, "callback"), "callback_token": token,
    }, separators=(",", ":")).encode()


def claim_json(grant: ClaimGrant) -> dict[str, Any]:
    return {"wake_id": grant.wake_id, "generation": grant.generation, "token": grant.token,
            "streams": [stream_info_json(s) for s in grant.streams],
            "lease_ttl_ms": grant.lease_ttl_ms}
