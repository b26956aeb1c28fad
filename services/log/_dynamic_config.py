"""Dynamic broker configs: what AlterConfigs and IncrementalAlterConfigs set on a BROKER.

As in Kafka, a config is set either for this broker (resource name = its node id) or as the
cluster-wide default (resource name ""), and the broker's value wins over the default, which
wins over the static settings. The broker-level topic defaults (``log.cleanup.policy``,
``log.retention.ms``, ``message.max.bytes``, ...) act at once on every topic that does not
override them; Kafka's other dynamic broker configs (thread pools, listeners, SSL, SASL, quotas
on connections, ...) are accepted, kept and reported, but have nothing to act on here.

The overrides are journaled (``meta/broker-configs.journal``) before they are acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from services.log._config import TOPIC_CONFIG_KEYS, TopicConfig
from services.log._errors import ErrorCode, KafkaError, StorageError
from services.log._journal import Journal, JournalBacked

CLUSTER_DEFAULT = ""

# Broker config -> the topic config it is the default of (Kafka's ServerTopicConfigSynonyms),
# for the topic configs this broker has.
_SYNONYMS = {
    "log.segment.bytes": "segment.bytes",
    "log.roll.ms": "segment.ms",
    "log.roll.jitter.ms": "segment.jitter.ms",
    "log.index.size.max.bytes": "segment.index.bytes",
    "log.flush.interval.messages": "flush.messages",
    "log.flush.interval.ms": "flush.ms",
    "log.retention.bytes": "retention.bytes",
    "log.retention.ms": "retention.ms",
    "message.max.bytes": "max.message.bytes",
    "log.index.interval.bytes": "index.interval.bytes",
    "log.cleaner.delete.retention.ms": "delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms": "min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms": "max.compaction.lag.ms",
    "log.segment.delete.delay.ms": "file.delete.delay.ms",
    "log.cleaner.min.cleanable.ratio": "min.cleanable.dirty.ratio",
    "log.cleanup.policy": "cleanup.policy",
    "unclean.leader.election.enable": "unclean.leader.election.enable",
    "min.insync.replicas": "min.insync.replicas",
    "compression.type": "compression.type",
    "log.preallocate": "preallocate",
    "log.message.timestamp.type": "message.timestamp.type",
    "log.message.timestamp.difference.max.ms": "message.timestamp.difference.max.ms",
    "log.message.timestamp.before.max.ms": "message.timestamp.before.max.ms",
    "log.message.timestamp.after.max.ms": "message.timestamp.after.max.ms",
    "log.message.downconversion.enable": "message.downconversion.enable",
}
TOPIC_SYNONYMS = {key: topic for key, topic in _SYNONYMS.items() if topic in TOPIC_CONFIG_KEYS}
BROKER_KEY_OF_TOPIC = {topic: key for key, topic in TOPIC_SYNONYMS.items()}

_SSL = {
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.certificates",
}
_LISTENER = {
    "advertised.listeners",
    "listeners",
    "listener.security.protocol.map",
    "principal.builder.class",
    "ssl.protocol",
    "ssl.provider",
    "ssl.cipher.suites",
    "ssl.enabled.protocols",
    "ssl.keymanager.algorithm",
    "ssl.trustmanager.algorithm",
    "ssl.endpoint.identification.algorithm",
    "ssl.secure.random.implementation",
    "ssl.client.auth",
    "ssl.engine.factory.class",
    "sasl.mechanism.inter.broker.protocol",
    "sasl.jaas.config",
    "sasl.enabled.mechanisms",
    "sasl.kerberos.service.name",
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.ticket.renew.window.factor",
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.principal.to.local.rules",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.buffer.seconds",
    "connections.max.reauth.ms",
}
_CLUSTER_LEVEL = {"max.connections", "max.connection.creation.rate", "num.network.threads"}
# Kafka's per-broker-only configs: refused as a cluster-wide default.
PER_BROKER_KEYS = frozenset((_SSL | _LISTENER) - _CLUSTER_LEVEL)
DYNAMIC_KEYS = frozenset(
    set(TOPIC_SYNONYMS)
    | _SSL
    | _LISTENER
    | _CLUSTER_LEVEL
    | {"num.io.threads", "num.replica.fetchers", "num.recovery.threads.per.data.dir"}
    | {"background.threads", "metric.reporters", "max.connections.per.ip"}
    | {"max.connections.per.ip.overrides", "producer.id.expiration.ms"}
    | {"transaction.partition.verification.enable", "log.cleaner.threads"}
    | {"log.cleaner.dedupe.buffer.size", "log.cleaner.io.buffer.load.factor"}
    | {"log.cleaner.io.buffer.size", "log.cleaner.io.max.bytes.per.second"}
    | {"log.cleaner.backoff.ms"}
)
# Configs of Kafka's LIST type, the only ones APPEND and SUBTRACT apply to.
LIST_KEYS = frozenset(
    {"log.cleanup.policy", "metric.reporters", "sasl.enabled.mechanisms", "ssl.cipher.suites"}
    | {"ssl.enabled.protocols", "listeners", "advertised.listeners"}
)


def check(scope: str, configs: Mapping[str, str], static: TopicConfig) -> None:
    """Raise the Kafka error for a set of overrides that ``scope`` cannot hold."""
    unknown = sorted(set(configs) - DYNAMIC_KEYS)
    if unknown:
        raise KafkaError(
            ErrorCode.INVALID_REQUEST,
            f"cannot update these configs dynamically: {', '.join(unknown)}",
        )
    if scope == CLUSTER_DEFAULT:
        per_broker = sorted(set(configs) & PER_BROKER_KEYS)
        if per_broker:
            raise KafkaError(
                ErrorCode.INVALID_REQUEST,
                "cannot update these configs at default cluster level, broker id must be "
                f"specified: {', '.join(per_broker)}",
            )
    topic_defaults(static, configs)  # INVALID_CONFIG for a bad topic default


def topic_defaults(static: TopicConfig, *layers: Mapping[str, str]) -> TopicConfig:
    """The topic defaults once the broker-level overrides (weakest first) are applied."""
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer)
    return static.with_kafka(
        {TOPIC_SYNONYMS[key]: value for key, value in merged.items() if key in TOPIC_SYNONYMS}
    )


class DynamicConfigStore(JournalBacked):
    """Dynamic broker config overrides per scope (a node id, or "" for the cluster)."""

    _kind = "dynamic broker config store"

    def __init__(self, journal: Journal) -> None:
        super().__init__(journal)
        self._scopes: dict[str, dict[str, str]] = {}

    @classmethod
    def open(cls, path: Path) -> DynamicConfigStore:
        """Open (or create) the store at ``path``, replay it and compact it to a snapshot."""
        journal = Journal.open(path)
        store = cls(journal)
        try:
            for entry in journal.replay():
                try:
                    configs = entry["configs"]
                    if entry["op"] != "set" or not isinstance(configs, dict):
                        raise TypeError("not a set entry")
                    store._scopes[str(entry["scope"])] = {
                        str(k): str(v) for k, v in configs.items()
                    }
                except (KeyError, TypeError) as exc:
                    raise StorageError(f"malformed broker config entry {entry!r}: {exc}") from exc
            journal.rewrite(
                {"op": "set", "scope": scope, "configs": configs}
                for scope, configs in sorted(store._scopes.items())
                if configs
            )
        except BaseException:
            journal.close()
            raise
        return store

    def overrides(self, scope: str) -> dict[str, str]:
        """The overrides set for ``scope`` (a copy)."""
        self._check_open()
        return dict(self._scopes.get(scope, {}))

    def replace(self, scope: str, configs: Mapping[str, str]) -> None:
        """Make ``configs`` the whole set of overrides of ``scope``; durable on return."""
        entry = {"op": "set", "scope": scope, "configs": dict(configs)}
        self._check_open().append(entry)
        self._scopes[scope] = dict(configs)
