"""A subscription's cursors against the store: links at tails, pending work, and acks.

The store's paths start with ``/``; subscriptions speak stream-root-relative paths. A cursor
remembers the stream incarnation it was made for, so a stream deleted and created again under
the same path counts as new data from its first offset, never as already acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from services.streams._errors import StreamRequestError
from services.streams._offsets import parse_offset
from services.streams._store import StreamStore
from services.streams._subscription_errors import InvalidOffsetError
from services.streams._subscription_model import (
    Link,
    StreamInfo,
    Subscription,
    SubscriptionConfig,
    glob_match,
    is_reserved,
    relative_path,
    store_path,
)
from services.streams._subscription_wire import Ack


def matches(config: SubscriptionConfig, path: str) -> bool:
    """Whether the subscription's pattern links ``path`` (stream-root-relative)."""
    # A subscription never follows its own wake stream: each wake event would be new work.
    return (config.pattern is not None and path != config.wake_stream
            and not is_reserved(path) and glob_match(config.pattern, path))


class Cursors:
    """Reads the store on behalf of subscriptions; never writes to it."""

    def __init__(self, store: StreamStore) -> None:
        self._store = store

    async def link_at_tail(self, path: str, *, explicit: bool = False, glob: bool = False
                           ) -> Link:
        """A new link whose cursor is the stream's tail (0 if it does not exist yet)."""
        try:
            meta, tail = await self._store.head(store_path(path))
        except StreamRequestError:
            return Link(path=path, explicit=explicit, glob=glob)
        return Link(path=path, explicit=explicit, glob=glob, acked=tail,
                    incarnation=meta.incarnation)

    async def backfill(self, config: SubscriptionConfig) -> tuple[Link, ...]:
        """The links of a new subscription: its explicit streams and every matching stream,
        each at its current tail (creating a subscription replays no history)."""
        links: dict[str, Link] = {}
        for path in config.streams:
            links[path] = await self.link_at_tail(path, explicit=True)
        if config.pattern:
            for path in self._store.paths():
                relative = relative_path(path)
                if not matches(config, relative):
                    continue
                current = links.get(relative)
                links[relative] = (replace(current, glob=True) if current is not None
                                   else await self.link_at_tail(relative, glob=True))
        return tuple(links.values())

    async def info(self, link: Link) -> StreamInfo:
        """The cursor of ``link`` next to its stream's tail now."""
        try:
            meta, tail = await self._store.head(store_path(link.path))
        except StreamRequestError:
            return StreamInfo(path=link.path, link_type=link.link_type, acked=link.acked,
                              tail=0, incarnation=None)
        acked = link.acked if link.incarnation in (None, meta.incarnation) else 0
        return StreamInfo(path=link.path, link_type=link.link_type, acked=acked, tail=tail,
                          incarnation=meta.incarnation)

    async def infos(self, subscription: Subscription) -> list[StreamInfo]:
        """Every link with its tail; glob links of streams that no longer exist are left out."""
        infos = []
        for link in subscription.links:
            info = await self.info(link)
            if info.incarnation is None and not link.explicit:
                continue
            infos.append(info)
        return infos

    async def link_new(self, subscription: Subscription, paths: Iterable[str]) -> Subscription:
        """``subscription`` with created or grown streams linked: a new matching stream at 0
        (before its first data), a re-created linked stream reset to 0."""
        for path in sorted(paths):
            link = subscription.link(path)
            matching = matches(subscription.config, path)
            if link is None and not matching:
                continue
            try:
                meta, _tail = await self._store.head(store_path(path))
            except StreamRequestError:
                continue  # deleted or expired since
            if link is None:
                link = Link(path=path, glob=True, acked=0, incarnation=meta.incarnation)
            elif link.incarnation != meta.incarnation:
                acked = link.acked if link.incarnation is None else 0
                link = replace(link, glob=link.glob or matching, acked=acked,
                               incarnation=meta.incarnation)
            elif matching and not link.glob:
                link = replace(link, glob=True)
            else:
                continue
            subscription = subscription.with_link(link)
        return subscription

    async def apply_acks(self, subscription: Subscription, acks: Sequence[Ack]
                         ) -> Subscription:
        """``subscription`` with its cursors moved to ``acks``: all of them, or none.

        Raises :class:`InvalidOffsetError` for an unknown stream, a malformed offset, or one
        behind the cursor or past the tail.
        """
        for ack in acks:
            link = subscription.link(ack.stream)
            if link is None:
                raise InvalidOffsetError(f"{ack.stream!r} is not a stream of subscription "
                                         f"{subscription.id!r}; ack the paths of the wake")
            position = parse_offset(ack.offset)
            if position is None:
                raise InvalidOffsetError(f"{ack.offset!r} is not an offset of this server; ack "
                                         "a tail_offset you were given")
            info = await self.info(link)
            if position < info.acked:
                raise InvalidOffsetError(f"ack {ack.offset} of {ack.stream!r} is behind its "
                                         "cursor; acks never move backwards")
            if position > info.tail:
                raise InvalidOffsetError(f"ack {ack.offset} of {ack.stream!r} is past the "
                                         "stream's tail; ack a tail_offset you were given")
            subscription = subscription.with_link(replace(link, acked=position,
                                                          incarnation=info.incarnation))
        return subscription
