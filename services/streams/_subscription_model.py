"""What a subscription is: its configuration, its stream links (cursors) and its wake state.

A :class:`Subscription` is an immutable value; the manager replaces it on every change, after
the change is durable in the subscriptions topic. Offsets are stream positions (``int``) here
and offset tokens (:func:`format_offset`) on the wire. An ``acked`` position is where the next
read of the stream starts: acking the ``tail_offset`` of a wake means everything up to that
tail is processed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import operator
from dataclasses import dataclass, replace
from typing import Any, Literal

SubscriptionType = Literal["webhook", "pull-wake"]
RESERVED_SEGMENT = "__ds"
DEFAULT_LEASE_TTL_MS = 30_000
MIN_LEASE_TTL_MS = 1_000
MAX_LEASE_TTL_MS = 10 * 60_000


def relative_path(path: str) -> str:
    """A stream-root-relative path without leading or trailing slashes (``events/abc``)."""
    return path.strip("/")


def store_path(relative: str) -> str:
    """The store's path for a stream-root-relative one (``/events/abc``)."""
    return "/" + relative


def is_reserved(relative: str) -> bool:
    return relative == RESERVED_SEGMENT or relative.startswith(RESERVED_SEGMENT + "/")


def glob_match(pattern: str, path: str) -> bool:
    """Whether ``path`` matches ``pattern``: ``*`` is one segment, ``**`` zero or more."""
    segments = [s for s in path.split("/") if s]
    # reach[j]: the pattern so far matches the first j segments. One pass per pattern segment
    # keeps a hostile pattern ("**/**/**/...") linear instead of exponential.
    reach = [True] + [False] * len(segments)
    for part in (p for p in pattern.split("/") if p):
        if part == "**":
            reach = list(itertools.accumulate(reach, operator.or_))
        else:
            reach = [False] + [
                reach[j] and (part == "*" or part == segments[j]) for j in range(len(segments))
            ]
    return reach[-1]


@dataclass(frozen=True, kw_only=True, slots=True)
class SubscriptionConfig:
    """What a client asked for in ``PUT __ds/subscriptions/{id}``, normalized."""

    type: SubscriptionType
    pattern: str | None = None
    streams: tuple[str, ...] = ()  # explicit links at creation, sorted and unique
    webhook_url: str | None = None
    wake_stream: str | None = None
    lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS
    description: str | None = None

    def digest(self) -> str:
        """The hash re-confirmation compares (the spec's normalized configuration hash)."""
        canonical = json.dumps({
            "type": self.type, "pattern": self.pattern, "streams": list(self.streams),
            "webhook": {"url": self.webhook_url} if self.webhook_url else None,
            "wake_stream": self.wake_stream, "lease_ttl_ms": self.lease_ttl_ms,
            "description": self.description,
        }, separators=(",", ":"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class Link:
    """The subscription's cursor on one stream."""

    path: str  # stream-root-relative
    explicit: bool = False
    glob: bool = False
    acked: int = 0
    # The stream incarnation ``acked`` refers to; None while the stream does not exist. A
    # deleted and re-created stream starts over at 0 instead of inheriting an old cursor.
    incarnation: str | None = None

    @property
    def link_type(self) -> str:
        return "explicit" if self.explicit else "glob"


@dataclass(frozen=True, kw_only=True, slots=True)
class Wake:
    """The wake in flight: issued, maybe delivered, maybe held by a worker."""

    wake_id: str  # the generation is the subscription's
    issued_at: float
    delivered: bool = False  # webhook accepted (2xx) / wake event written
    holder: str | None = None  # the pull-wake worker that claimed it
    lease_expires_at: float | None = None  # unix seconds; None: no lease running yet


@dataclass(frozen=True, kw_only=True, slots=True)
class Subscription:
    """A subscription's whole durable state (one record of the subscriptions topic)."""

    id: str
    incarnation: str
    config: SubscriptionConfig
    created_at: str  # RFC 3339, UTC, milliseconds
    stream_root: str  # absolute stream root URL seen at creation (".../v1/stream/")
    links: tuple[Link, ...] = ()
    generation: int = 0
    wake: Wake | None = None
    attempts: int = 0  # failed deliveries of the current wake
    next_attempt_at: float | None = None  # unix seconds of the next delivery retry
    status: Literal["active", "failed"] = "active"

    def link(self, path: str) -> Link | None:
        for link in self.links:
            if link.path == path:
                return link
        return None

    def with_link(self, link: Link) -> Subscription:
        """This subscription with ``link`` added or replacing the one at its path."""
        links = [link if existing.path == link.path else existing for existing in self.links]
        if self.link(link.path) is None:
            links.append(link)
        return replace(self, links=tuple(links))

    def without_link(self, path: str) -> Subscription:
        return replace(self, links=tuple(x for x in self.links if x.path != path))

    def with_(self, **changes: Any) -> Subscription:
        return replace(self, **changes)

    # ------------------------------------------------------------------ storage

    def to_json(self) -> bytes:
        config = self.config
        wake = self.wake
        return json.dumps({
            "id": self.id, "incarnation": self.incarnation, "created_at": self.created_at,
            "stream_root": self.stream_root,
            "config": {
                "type": config.type, "pattern": config.pattern, "streams": list(config.streams),
                "webhook_url": config.webhook_url, "wake_stream": config.wake_stream,
                "lease_ttl_ms": config.lease_ttl_ms, "description": config.description,
            },
            "links": [{"path": x.path, "explicit": x.explicit, "glob": x.glob,
                       "acked": x.acked, "incarnation": x.incarnation} for x in self.links],
            "generation": self.generation,
            "wake": None if wake is None else {
                "wake_id": wake.wake_id, "issued_at": wake.issued_at, "delivered": wake.delivered,
                "holder": wake.holder, "lease_expires_at": wake.lease_expires_at,
            },
            "attempts": self.attempts, "next_attempt_at": self.next_attempt_at,
            "status": self.status,
        }, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, value: bytes) -> Subscription:
        data = json.loads(value)
        config = data["config"]
        wake = data["wake"]
        return cls(
            id=data["id"], incarnation=data["incarnation"], created_at=data["created_at"],
            stream_root=data["stream_root"],
            config=SubscriptionConfig(
                type=config["type"], pattern=config["pattern"],
                streams=tuple(config["streams"]), webhook_url=config["webhook_url"],
                wake_stream=config["wake_stream"], lease_ttl_ms=config["lease_ttl_ms"],
                description=config["description"]),
            links=tuple(Link(path=x["path"], explicit=x["explicit"], glob=x["glob"],
                             acked=x["acked"], incarnation=x["incarnation"])
                        for x in data["links"]),
            generation=data["generation"],
            wake=None if wake is None else Wake(
                wake_id=wake["wake_id"], issued_at=wake["issued_at"], delivered=wake["delivered"],
                holder=wake["holder"], lease_expires_at=wake["lease_expires_at"]),
            attempts=data["attempts"], next_attempt_at=data["next_attempt_at"],
            status=data["status"],
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamInfo:
    """A link as a wake or claim reports it: the cursor and the stream's tail now."""

    path: str
    link_type: str
    acked: int
    tail: int
    incarnation: str | None  # of the stream now (None: it does not exist)

    @property
    def has_pending(self) -> bool:
        return self.tail > self.acked
