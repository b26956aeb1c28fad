"""Subscriptions on the log: a compacted topic replayed at start, like the stream catalog.

Key ``subscription:<id>`` holds a subscription's whole state (a tombstone deletes it); key
``signing-key`` holds the webhook signing key, so signatures and tokens survive restarts with no
other storage. The topic is internal: it is never exposed as a stream.
"""

from __future__ import annotations

from services.streams._log import OutRecord, StreamLog
from services.streams._signing import SigningKey
from services.streams._subscription_model import Subscription

SUBSCRIPTIONS_TOPIC = "__netscript_stream_subscriptions"
_SUBSCRIPTION_PREFIX = b"subscription:"
_SIGNING_KEY = b"signing-key"
_READ_CHUNK = 4 * 1024 * 1024


class SubscriptionLog:
    """Durable subscription records and the signing key."""

    def __init__(self, log: StreamLog, *, topic: str = SUBSCRIPTIONS_TOPIC) -> None:
        self._log = log
        self._topic = topic

    async def load(self) -> tuple[SigningKey | None, dict[str, Subscription]]:
        """Create the topic if needed and replay it: the signing key and every subscription."""
        await self._log.create_topic(self._topic, configs={
            "cleanup.policy": "compact", "retention.ms": "-1",
        })
        key: SigningKey | None = None
        subscriptions: dict[str, Subscription] = {}
        end = await self._log.end_offset(self._topic)
        offset = 0
        while offset < end:
            records, _hw = await self._log.read(self._topic, offset, max_bytes=_READ_CHUNK)
            if not records:
                break
            for record in records:
                name = record.key or b""
                if name == _SIGNING_KEY and record.value is not None:
                    key = SigningKey.from_record(record.value)
                elif name.startswith(_SUBSCRIPTION_PREFIX):
                    subscription_id = name[len(_SUBSCRIPTION_PREFIX):].decode()
                    if record.value is None:
                        subscriptions.pop(subscription_id, None)
                    else:
                        subscriptions[subscription_id] = Subscription.from_json(record.value)
            offset = records[-1].offset + 1
        return key, subscriptions

    async def put_key(self, key: SigningKey) -> None:
        await self._log.append(self._topic, [OutRecord(key=_SIGNING_KEY,
                                                       value=key.to_record())])

    async def put(self, subscription: Subscription) -> None:
        """Store ``subscription``'s state durably (acknowledged by the log)."""
        await self._log.append(self._topic, [OutRecord(
            key=_SUBSCRIPTION_PREFIX + subscription.id.encode(), value=subscription.to_json())])

    async def remove(self, subscription_id: str) -> None:
        """Delete a subscription durably (a tombstone the compaction later drops)."""
        await self._log.append(self._topic, [OutRecord(
            key=_SUBSCRIPTION_PREFIX + subscription_id.encode(), value=None)])
