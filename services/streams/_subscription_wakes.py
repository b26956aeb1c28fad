"""The life of a wake: issue, lease, deliver (webhook POST or wake event), retry, finish.

The state transitions are pure functions of a :class:`Subscription` and the time; only
:class:`Deliverer` does I/O. A delivery that fails keeps the same wake (same ``wake_id`` and
generation) and retries it after 1, 2, 4 … 60 s (±20 %); the schedule is part of the durable
state, so a restarted server keeps it. While a webhook wake is being retried nobody holds it, so
its lease is pushed past the next attempt instead of expiring into a new generation.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace

from services.streams._errors import LogUnavailableError, StreamRequestError
from services.streams._signing import SigningKey
from services.streams._store import AppendRequest, StreamStore
from services.streams._subscription_model import StreamInfo, Subscription, Wake, store_path
from services.streams._subscription_wire import webhook_body
from services.streams._webhooks import Delivery, WebhookSender, retry_delay


def lease_seconds(subscription: Subscription) -> float:
    return subscription.config.lease_ttl_ms / 1000


def issue_wake(subscription: Subscription, now: float, *, delivered: bool = False
               ) -> Subscription:
    """A new wake: the next generation and a fresh wake id; a webhook's lease starts now."""
    lease = now + lease_seconds(subscription) if subscription.config.webhook_url else None
    wake = Wake(wake_id="w_" + secrets.token_hex(12), issued_at=now, delivered=delivered,
                lease_expires_at=lease)
    return subscription.with_(generation=subscription.generation + 1, wake=wake, attempts=0,
                              next_attempt_at=None, status="active")


def clear_wake(subscription: Subscription) -> Subscription:
    return subscription.with_(wake=None, attempts=0, next_attempt_at=None, status="active")


def expire_lease(subscription: Subscription, now: float) -> Subscription:
    """Without the wake if its lease ran out (the holder and its token lose it)."""
    wake = subscription.wake
    if wake is not None and wake.lease_expires_at is not None and wake.lease_expires_at <= now:
        return clear_wake(subscription)
    return subscription


def extend_lease(subscription: Subscription, now: float, *, holder: str | None = None
                 ) -> Subscription:
    wake = subscription.wake
    assert wake is not None
    wake = replace(wake, lease_expires_at=now + lease_seconds(subscription),
                   holder=holder or wake.holder)
    return subscription.with_(wake=wake)


def next_deadline(subscription: Subscription) -> float | None:
    """When the wake's lease expires or its next delivery attempt is due (unix seconds)."""
    wake = subscription.wake
    if wake is None:
        return None
    deadlines = []
    if wake.lease_expires_at is not None:
        deadlines.append(wake.lease_expires_at)
    if not wake.delivered:
        deadlines.append(subscription.next_attempt_at or 0.0)
    return min(deadlines) if deadlines else None


def delivery_due(subscription: Subscription, now: float) -> bool:
    wake = subscription.wake
    return wake is not None and not wake.delivered and (
        subscription.next_attempt_at is None or subscription.next_attempt_at <= now)


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookWork:
    """A signed POST to send."""

    wake_id: str
    url: str
    body: bytes
    shown: tuple[StreamInfo, ...]  # the tails a {"done": true} answer acknowledges


@dataclass(frozen=True, kw_only=True, slots=True)
class WakeEventWork:
    """A wake event to append to a pull-wake subscription's wake stream."""

    wake_id: str
    wake_stream: str
    event: dict[str, object]


Work = WebhookWork | WakeEventWork


def plan_delivery(subscription: Subscription, infos: list[StreamInfo], now: float, *,
                  callback_token: str) -> Work:
    """What delivering the current wake means for this subscription."""
    wake = subscription.wake
    assert wake is not None
    config = subscription.config
    if config.webhook_url is not None:
        return WebhookWork(wake_id=wake.wake_id, url=config.webhook_url,
                           body=webhook_body(subscription, infos, token=callback_token),
                           shown=tuple(infos))
    assert config.wake_stream is not None
    trigger = next((info.path for info in infos if info.has_pending), "")
    return WakeEventWork(wake_id=wake.wake_id, wake_stream=config.wake_stream, event={
        "type": "wake", "subscription_id": subscription.id, "stream": trigger,
        "generation": subscription.generation, "ts": int(now * 1000)})


def settle(subscription: Subscription, work: Work, delivery: Delivery, now: float
           ) -> tuple[Subscription, bool]:
    """``subscription`` after a delivery of its current wake ended, and whether the wake
    finished (the caller then wakes again if work is still pending)."""
    wake = subscription.wake
    assert wake is not None
    assert wake.wake_id == work.wake_id
    is_webhook = isinstance(work, WebhookWork)
    if not delivery.accepted:
        attempts = subscription.attempts + 1
        next_at = now + retry_delay(attempts)
        if is_webhook:
            wake = replace(wake, lease_expires_at=next_at + lease_seconds(subscription))
        return subscription.with_(wake=wake, attempts=attempts, next_attempt_at=next_at,
                                  status="failed"), False
    if isinstance(work, WebhookWork) and delivery.done:
        for info in work.shown:
            link = subscription.link(info.path)
            if link is None or info.incarnation is None or (
                link.incarnation not in (None, info.incarnation)
            ):
                continue  # unlinked or re-created since the snapshot
            subscription = subscription.with_link(replace(
                link, acked=max(link.acked, info.tail), incarnation=info.incarnation))
        return clear_wake(subscription), True
    wake = replace(wake, delivered=True)
    if is_webhook:
        wake = replace(wake, lease_expires_at=now + lease_seconds(subscription))
    return subscription.with_(wake=wake, attempts=0, next_attempt_at=None,
                              status="active"), False


class Deliverer:
    """Performs deliveries: signs and POSTs webhooks, appends wake events to the store."""

    def __init__(self, store: StreamStore, key: SigningKey, sender: WebhookSender) -> None:
        self._store = store
        self._key = key
        self._sender = sender

    async def deliver(self, work: Work) -> Delivery:
        """Deliver ``work``; failures are outcomes, never exceptions."""
        if isinstance(work, WebhookWork):
            signature = self._key.sign_webhook(work.body)
            return await self._sender.deliver(work.url, work.body, signature=signature)
        path = store_path(work.wake_stream)
        try:
            meta, _tail = await self._store.head(path)
            compact = json.dumps(work.event, separators=(",", ":"))
            # A JSON stream stores the array of its messages; any other gets one JSON line.
            data = f"[{compact}]" if meta.is_json else compact + "\n"
            await self._store.append(path, AppendRequest(data=data.encode(),
                                                         content_type=meta.content_type))
        except (StreamRequestError, LogUnavailableError) as exc:
            return Delivery(accepted=False, detail=f"wake stream {work.wake_stream}: {exc}")
        return Delivery(accepted=True)
