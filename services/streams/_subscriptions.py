"""The subscription manager: durable cursors over streams that wake workers when work is pending.

Every subscription is a value in the subscriptions topic; a change is appended (and
acknowledged by the log) before it becomes current, under the subscription's lock, so a request
that fails leaves no trace and a restart resumes where the log says. Each subscription has an
actor task in the manager's task group: it links newly created matching streams, expires
leases, issues wakes and delivers them (a signed webhook POST, or a wake event appended to the
pull-wake stream), retrying failed deliveries. HTTP handlers call the manager directly for
create/read/delete, membership, callbacks, claims, acks and releases.

A wake in flight (issued, or held by a worker) blocks new wakes; it ends with ``done`` (the acks,
or for a webhook answering ``{"done": true}`` the tails it was shown, become the cursors), a
release, or an expired lease, and a new wake follows at once if work is still pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from services.streams._errors import LogUnavailableError
from services.streams._log import StreamLog
from services.streams._signing import SigningKey, TokenClaims
from services.streams._store import StreamStore
from services.streams._subscription_cursors import Cursors, matches
from services.streams._subscription_errors import (
    AlreadyClaimedError,
    FencedError,
    InvalidSubscriptionRequestError,
    NoPendingWorkError,
    SubscriptionExistsError,
    SubscriptionNotFoundError,
    SubscriptionsUnhealthyError,
    TokenRejectedError,
)
from services.streams._subscription_log import SUBSCRIPTIONS_TOPIC, SubscriptionLog
from services.streams._subscription_model import (
    StreamInfo,
    Subscription,
    SubscriptionConfig,
    is_reserved,
    relative_path,
)
from services.streams._subscription_wakes import (
    Deliverer,
    clear_wake,
    delivery_due,
    expire_lease,
    extend_lease,
    issue_wake,
    next_deadline,
    plan_delivery,
    settle,
)
from services.streams._subscription_wire import ClaimGrant, WakeReport
from services.streams._webhooks import WebhookSender

logger = logging.getLogger(__name__)

TOKEN_TTL_SECONDS = 3600.0
LOG_RETRY_SECONDS = 1.0


@dataclass(kw_only=True, slots=True)
class _Gate:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or waiting


@dataclass(kw_only=True, slots=True)
class _Actor:
    """The inbox of one subscription's actor task."""

    paths: set[str] = field(default_factory=set)  # streams created or grown since last step
    poke: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def notice(self, path: str | None = None) -> None:
        if path is not None:
            self.paths.add(path)
        self.poke.set()


class SubscriptionManager:
    """Every subscription of one streams server; an async context manager owning its tasks.

    ``async with SubscriptionManager(store, log) as manager:`` replays the subscriptions topic
    (creating the webhook signing key on first use), starts one actor per subscription and
    listens to the store; leaving the block stops them and closes the webhook client (a
    ``sender`` passed in is owned too). A manager cannot be reopened.
    """

    def __init__(
        self, store: StreamStore, log: StreamLog, *, topic: str = SUBSCRIPTIONS_TOPIC,
        token_ttl: float = TOKEN_TTL_SECONDS, sender: WebhookSender | None = None,
    ) -> None:
        self._store = store
        self._cursors = Cursors(store)
        self._records = SubscriptionLog(log, topic=topic)
        self._token_ttl = token_ttl
        self._sender = sender
        self._deliverer: Deliverer | None = None
        self._subs: dict[str, Subscription] = {}
        self._locks: dict[str, _Gate] = {}
        self._actors: dict[str, _Actor] = {}
        self._crashed: dict[str, str] = {}
        self._key: SigningKey | None = None
        self._stack = contextlib.AsyncExitStack()
        self._tasks: asyncio.TaskGroup | None = None
        self._state = "new"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError("a SubscriptionManager cannot be reopened; create a new one")
        self._state = "opening"
        try:
            key, self._subs = await self._records.load()
            if key is None:
                key = SigningKey.generate()
                await self._records.put_key(key)
            self._key = key
            sender = await self._stack.enter_async_context(self._sender or WebhookSender())
            self._deliverer = Deliverer(self._store, key, sender)
            self._tasks = await self._stack.enter_async_context(asyncio.TaskGroup())
        except BaseException:
            self._state = "closed"
            await self._stack.aclose()
            raise
        for subscription_id in self._subs:
            self._start_actor(subscription_id, self._register(subscription_id))
        self._store.add_listener(self._on_stream_change)
        self._state = "open"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every actor and close the webhook client (a second call does nothing)."""
        if self._state == "closed":
            return
        self._state = "closed"
        for actor in self._actors.values():
            if actor.task is not None:
                actor.task.cancel()
        self._actors.clear()
        await self._stack.aclose()

    def check_health(self) -> None:
        """Raise :class:`SubscriptionsUnhealthyError` if an actor crashed."""
        if self._crashed:
            raise SubscriptionsUnhealthyError(self._crashed)

    @property
    def signing_key(self) -> SigningKey:
        """The webhook signing key (published by ``__ds/jwks.json``)."""
        if self._key is None:
            raise RuntimeError("the subscription manager is not open; use `async with`")
        return self._key

    # ------------------------------------------------------------------ subscriptions

    async def put(
        self, subscription_id: str, config: SubscriptionConfig, *, stream_root: str
    ) -> tuple[bool, Subscription, list[StreamInfo]]:
        """Create a subscription, or re-confirm one with the identical configuration.

        Returns ``(created, subscription, streams)``; raises :class:`SubscriptionExistsError`
        when the id is taken by another configuration.
        """
        async with self._locked(subscription_id):
            existing = self._subs.get(subscription_id)
            if existing is not None:
                if existing.config.digest() != config.digest():
                    raise SubscriptionExistsError(subscription_id)
                return False, existing, await self._cursors.infos(existing)
            # Registered before the backfill, so streams created meanwhile reach the inbox.
            actor = self._register(subscription_id)
            try:
                subscription = Subscription(
                    id=subscription_id, incarnation=uuid.uuid4().hex, config=config,
                    created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace(
                        "+00:00", "Z"),
                    stream_root=stream_root, links=await self._cursors.backfill(config))
                await self._commit(subscription)
            except BaseException:
                self._actors.pop(subscription_id, None)
                raise
            self._start_actor(subscription_id, actor)
            return True, subscription, await self._cursors.infos(subscription)

    async def get(self, subscription_id: str) -> tuple[Subscription, list[StreamInfo]]:
        """The subscription and its links now; raises :class:`SubscriptionNotFoundError`."""
        async with self._locked(subscription_id):
            subscription = self._require(subscription_id)
            return subscription, await self._cursors.infos(subscription)

    async def delete(self, subscription_id: str) -> None:
        """Delete a subscription (an absent one is fine); its wake's requests then fail."""
        async with self._locked(subscription_id):
            if subscription_id not in self._subs:
                return
            await self._records.remove(subscription_id)
            del self._subs[subscription_id]
            actor = self._actors.pop(subscription_id, None)
            if actor is not None and actor.task is not None:
                actor.task.cancel()

    async def add_streams(self, subscription_id: str, paths: Sequence[str]) -> None:
        """Link streams explicitly, at their current tails (already linked ones are kept)."""
        async with self._locked(subscription_id):
            subscription = self._require(subscription_id)
            for path in paths:
                link = subscription.link(path)
                if link is None:
                    link = await self._cursors.link_at_tail(path, explicit=True)
                elif link.explicit:
                    continue
                subscription = subscription.with_link(replace(link, explicit=True))
            if subscription != self._subs[subscription_id]:
                await self._commit(subscription)

    async def remove_stream(self, subscription_id: str, path: str) -> None:
        """Remove an explicit link; a glob link of the same stream stays."""
        async with self._locked(subscription_id):
            subscription = self._require(subscription_id)
            link = subscription.link(path)
            if link is None or not link.explicit:
                return
            if link.glob:
                subscription = subscription.with_link(replace(link, explicit=False))
            else:
                subscription = subscription.without_link(path)
            await self._commit(subscription)

    # ------------------------------------------------------------------ wakes

    async def callback(self, subscription_id: str, token: str, report: WakeReport) -> bool:
        """A webhook receiver's callback: apply acks, extend the lease, finish when done.

        Returns whether a new wake was issued (``next_wake``). Raises
        :class:`TokenRejectedError` (401) or :class:`FencedError` (409) for a stale wake.
        """
        return await self._report(subscription_id, token, report, kind="callback")

    async def ack(self, subscription_id: str, token: str, report: WakeReport) -> bool:
        """A pull-wake worker's ack (a heartbeat unless ``done``); returns ``next_wake``."""
        return await self._report(subscription_id, token, report, kind="claim")

    async def release(self, subscription_id: str, token: str, report: WakeReport) -> None:
        """A pull-wake worker gives its claim up without acking; pending work wakes again."""
        async with self._locked(subscription_id):
            subscription = self._require_type(subscription_id, "pull-wake")
            now = time.time()
            subscription = expire_lease(subscription, now)
            self._check_token(subscription, token, report, kind="claim")
            subscription = await self._wake_if_pending(clear_wake(subscription), now)
            await self._commit(subscription)
            self._poke(subscription_id)

    async def claim(self, subscription_id: str, worker: str) -> ClaimGrant:
        """Take the lease of a pull-wake subscription with pending work.

        Raises :class:`AlreadyClaimedError` while another worker holds it and
        :class:`NoPendingWorkError` when every stream is acked up to its tail.
        """
        async with self._locked(subscription_id):
            original = self._require_type(subscription_id, "pull-wake")
            now = time.time()
            subscription = expire_lease(original, now)
            wake = subscription.wake
            if wake is not None and wake.holder is not None:
                raise AlreadyClaimedError(holder=wake.holder, generation=subscription.generation)
            infos = await self._cursors.infos(subscription)
            if not any(info.has_pending for info in infos):
                # An unclaimed wake with nothing left to do would block every later wake.
                subscription = clear_wake(subscription)
                if subscription != original:
                    await self._commit(subscription)
                raise NoPendingWorkError(subscription_id)
            if wake is None:
                # The claimer learns of this wake from the answer: no wake event to write.
                subscription = issue_wake(subscription, now, delivered=True)
            subscription = extend_lease(subscription, now, holder=worker)
            wake = subscription.wake
            assert wake is not None
            # A claim ends any retry of the wake event: the wake reached a worker.
            subscription = subscription.with_(wake=replace(wake, delivered=True), attempts=0,
                                              next_attempt_at=None, status="active")
            await self._commit(subscription)
            self._poke(subscription_id)
            return ClaimGrant(
                wake_id=wake.wake_id, generation=subscription.generation,
                token=self._token(subscription, kind="claim"), streams=tuple(infos),
                lease_ttl_ms=subscription.config.lease_ttl_ms)

    async def _report(
        self, subscription_id: str, token: str, report: WakeReport, *, kind: str
    ) -> bool:
        async with self._locked(subscription_id):
            subscription = self._require_type(
                subscription_id, "webhook" if kind == "callback" else "pull-wake")
            now = time.time()
            subscription = expire_lease(subscription, now)
            self._check_token(subscription, token, report, kind=kind)
            subscription = await self._cursors.apply_acks(subscription, report.acks)
            if report.done:
                subscription = await self._wake_if_pending(clear_wake(subscription), now)
            else:
                subscription = extend_lease(subscription, now)
            await self._commit(subscription)
            self._poke(subscription_id)
            return report.done and subscription.wake is not None

    def _check_token(
        self, subscription: Subscription, token: str, report: WakeReport, *, kind: str
    ) -> None:
        """Refuse a forged or foreign token (401) and a stale wake or generation (409)."""
        claims = self.signing_key.read_token(token)
        if (claims.subscription_id != subscription.id
                or claims.incarnation != subscription.incarnation or claims.kind != kind):
            raise TokenRejectedError(f"the bearer token is not a {kind} token of subscription "
                                     f"{subscription.id!r}")
        wake = subscription.wake
        if (wake is None or claims.generation != subscription.generation
                or report.generation != subscription.generation
                or claims.wake_id != wake.wake_id or report.wake_id != wake.wake_id):
            raise FencedError(generation=subscription.generation)

    async def _wake_if_pending(self, subscription: Subscription, now: float) -> Subscription:
        if subscription.wake is not None:
            return subscription
        infos = await self._cursors.infos(subscription)
        if not any(info.has_pending for info in infos):
            return subscription
        return issue_wake(subscription, now)

    # ------------------------------------------------------------------ actors

    def _register(self, subscription_id: str) -> _Actor:
        actor = self._actors[subscription_id] = _Actor()
        return actor

    def _start_actor(self, subscription_id: str, actor: _Actor) -> None:
        assert self._tasks is not None
        actor.task = self._tasks.create_task(self._run(subscription_id, actor),
                                             name=f"subscription {subscription_id}")

    def _poke(self, subscription_id: str) -> None:
        actor = self._actors.get(subscription_id)
        if actor is not None:
            actor.notice()

    def _on_stream_change(self, path: str, tail: int) -> None:
        """Store listener: route a created or grown stream to the subscriptions it concerns."""
        if self._state != "open":
            return
        relative = relative_path(path)
        if is_reserved(relative):
            return
        for subscription_id, actor in self._actors.items():
            subscription = self._subs.get(subscription_id)
            # A subscription being created has no value yet: its actor sorts the path out.
            if subscription is None or subscription.link(relative) is not None or matches(
                subscription.config, relative
            ):
                actor.notice(relative)

    async def _run(self, subscription_id: str, actor: _Actor) -> None:
        while subscription_id in self._subs:
            actor.poke.clear()
            paths, actor.paths = actor.paths, set()
            try:
                deadline = await self._step(subscription_id, paths)
            except LogUnavailableError as exc:
                logger.warning("subscription %s: %s; retrying in %ss", subscription_id, exc,
                               LOG_RETRY_SECONDS)
                actor.paths |= paths
                deadline = time.time() + LOG_RETRY_SECONDS
            except Exception as exc:
                # Not restarted: a bug would only repeat itself. The health check reports it.
                logger.exception("subscription %s: actor crashed", subscription_id)
                self._crashed[subscription_id] = f"{type(exc).__name__}: {exc}"
                return
            delay = None if deadline is None else deadline - time.time()
            if delay is not None and delay <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await actor.poke.wait()

    async def _step(self, subscription_id: str, paths: set[str]) -> float | None:
        """Link, expire, wake and deliver once; returns the next deadline (unix seconds)."""
        assert self._deliverer is not None
        async with self._locked(subscription_id):
            subscription = self._subs.get(subscription_id)
            if subscription is None:
                return None
            now = time.time()
            before = subscription
            subscription = await self._cursors.link_new(subscription, paths)
            subscription = expire_lease(subscription, now)
            subscription = await self._wake_if_pending(subscription, now)
            if subscription != before:
                await self._commit(subscription)
            work = None
            if delivery_due(subscription, now):
                infos = await self._cursors.infos(subscription)
                token = (self._token(subscription, kind="callback")
                         if subscription.config.webhook_url else "")
                work = plan_delivery(subscription, infos, now, callback_token=token)
        if work is not None:
            # Outside the lock: a receiver may call back before it answers the POST.
            delivery = await self._deliverer.deliver(work)
            async with self._locked(subscription_id):
                subscription = self._subs.get(subscription_id)
                if subscription is None:
                    return None
                wake = subscription.wake
                # A callback may have finished the wake, or its lease expired, meanwhile.
                if wake is not None and wake.wake_id == work.wake_id and not wake.delivered:
                    now = time.time()
                    subscription, finished = settle(subscription, work, delivery, now)
                    if not delivery.accepted:
                        logger.warning(
                            "subscription %s: delivery %d of wake %s failed (%s); next in %.1fs",
                            subscription_id, subscription.attempts, work.wake_id,
                            delivery.detail, (subscription.next_attempt_at or now) - now)
                    if finished:
                        subscription = await self._wake_if_pending(subscription, now)
                    await self._commit(subscription)
        current = self._subs.get(subscription_id)
        return None if current is None else next_deadline(current)

    # ------------------------------------------------------------------ helpers

    @contextlib.asynccontextmanager
    async def _locked(self, subscription_id: str) -> AsyncIterator[None]:
        """Hold the subscription's lock; every change of its state happens under it."""
        gate = self._locks.get(subscription_id)
        if gate is None:
            gate = self._locks[subscription_id] = _Gate()
        gate.users += 1
        try:
            async with gate.lock:
                yield
        finally:
            gate.users -= 1
            # An unused lock is dropped, so requests for unknown ids leave nothing behind.
            if not gate.users:
                del self._locks[subscription_id]

    def _require(self, subscription_id: str) -> Subscription:
        subscription = self._subs.get(subscription_id)
        if subscription is None:
            raise SubscriptionNotFoundError(subscription_id)
        return subscription

    def _require_type(self, subscription_id: str, kind: str) -> Subscription:
        subscription = self._require(subscription_id)
        if subscription.config.type != kind:
            other = "callback" if kind == "pull-wake" else "claim, ack and release"
            raise InvalidSubscriptionRequestError(
                f"subscription {subscription_id!r} is {subscription.config.type}; use {other}")
        return subscription

    async def _commit(self, subscription: Subscription) -> None:
        """Make ``subscription`` durable, then current."""
        await self._records.put(subscription)
        self._subs[subscription.id] = subscription

    def _token(self, subscription: Subscription, *, kind: str) -> str:
        """A token for the current wake of ``subscription`` only."""
        assert subscription.wake is not None
        return self.signing_key.issue_token(TokenClaims(
            subscription_id=subscription.id, incarnation=subscription.incarnation,
            generation=subscription.generation, wake_id=subscription.wake.wake_id, kind=kind,
            expires_at=int(time.time() + self._token_ttl)))
