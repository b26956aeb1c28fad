"""Parsing the protocol's request headers and query parameters (400 on anything malformed)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from starlette.datastructures import Headers, QueryParams

from services.streams._errors import BadStreamRequestError
from services.streams._model import media_type, parse_rfc3339
from services.streams._offsets import BEGINNING, NOW, parse_offset
from services.streams._writers import MAX_SAFE_INTEGER, ProducerClaim

_NON_NEGATIVE = re.compile(r"^(0|[1-9][0-9]*)$")


def flag(headers: Headers, name: str) -> bool:
    """A presence flag such as ``Stream-Closed``: only ``true`` (any case) counts."""
    return headers.get(name, "").strip().lower() == "true"


def non_negative(value: str, name: str, *, limit: int = MAX_SAFE_INTEGER) -> int:
    if not _NON_NEGATIVE.match(value) or int(value) > limit:
        raise BadStreamRequestError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


@dataclass(frozen=True, kw_only=True, slots=True)
class Expiry:
    ttl_seconds: int | None
    expires_at: str | None


def expiry(headers: Headers) -> Expiry:
    ttl = headers.get("stream-ttl")
    expires_at = headers.get("stream-expires-at")
    if ttl is not None and expires_at is not None:
        raise BadStreamRequestError("send Stream-TTL or Stream-Expires-At, not both")
    if expires_at is not None:
        try:
            parse_rfc3339(expires_at)
        except ValueError as exc:
            raise BadStreamRequestError(
                f"Stream-Expires-At must be an RFC 3339 timestamp, got {expires_at!r}") from exc
    return Expiry(ttl_seconds=non_negative(ttl, "Stream-TTL") if ttl is not None else None,
                  expires_at=expires_at)


def producer_claim(headers: Headers) -> ProducerClaim | None:
    values = [headers.get(name) for name in ("producer-id", "producer-epoch", "producer-seq")]
    if all(v is None for v in values):
        return None
    producer_id, epoch, seq = values
    if producer_id is None or epoch is None or seq is None:
        raise BadStreamRequestError(
            "Producer-Id, Producer-Epoch and Producer-Seq must be sent together")
    if not producer_id:
        raise BadStreamRequestError("Producer-Id must not be empty")
    return ProducerClaim(producer_id=producer_id, epoch=non_negative(epoch, "Producer-Epoch"),
                         seq=non_negative(seq, "Producer-Seq"))


@dataclass(frozen=True, kw_only=True, slots=True)
class ForkRequest:
    source: str
    offset: str | None
    sub_offset: int


def fork_request(headers: Headers, *, prefix: str) -> ForkRequest | None:
    source = headers.get("stream-forked-from")
    sub = headers.get("stream-fork-sub-offset")
    offset = headers.get("stream-fork-offset")
    if source is None:
        if sub is not None or offset is not None:
            raise BadStreamRequestError(
                "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From")
        return None
    sub_offset = non_negative(sub.strip(), "Stream-Fork-Sub-Offset") if sub is not None else 0
    if sub_offset and offset is None:
        raise BadStreamRequestError("Stream-Fork-Sub-Offset > 0 needs Stream-Fork-Offset")
    if offset is not None and parse_offset(offset) is None:
        raise BadStreamRequestError(f"invalid Stream-Fork-Offset {offset!r}")
    path = source if source.startswith("/") else "/" + source
    if path.startswith(prefix + "/"):
        path = path[len(prefix):]
    return ForkRequest(source=path, offset=offset, sub_offset=sub_offset)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadQuery:
    offset: str  # "-1", "now" or a token
    live: str | None  # None, "long-poll" or "sse"
    cursor: str | None


def read_query(query: QueryParams) -> ReadQuery:
    offsets = query.getlist("offset")
    if len(offsets) > 1:
        raise BadStreamRequestError("send one offset parameter")
    live = query.get("live")
    if live not in (None, "long-poll", "sse"):
        raise BadStreamRequestError(f"live must be long-poll or sse, got {live!r}")
    if not offsets:
        if live is not None:
            raise BadStreamRequestError(f"live={live} needs an offset parameter")
        return ReadQuery(offset=BEGINNING, live=None, cursor=query.get("cursor"))
    offset = offsets[0]
    if offset not in (BEGINNING, NOW) and parse_offset(offset) is None:
        raise BadStreamRequestError(f"malformed offset {offset!r}")
    return ReadQuery(offset=offset, live=live, cursor=query.get("cursor"))


def json_messages(body: bytes, *, allow_empty: bool) -> bytes | None:
    """A JSON body as the stored JSON array of its messages (one level of array flattened).

    The body is validated, then stored as sent: an array body already is the array of its
    messages, any other value is wrapped in one — no re-serialisation on the write path.
    """
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadStreamRequestError(f"body is not valid JSON: {exc}") from exc
    if isinstance(value, list):
        if not value:
            if allow_empty:
                return None
            raise BadStreamRequestError("an empty JSON array appends nothing")
        return body.strip()
    return b"[" + body.strip() + b"]"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def is_text(content_type: str) -> bool:
    kind = media_type(content_type)
    return kind.startswith("text/") or kind == "application/json"
