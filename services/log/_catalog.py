"""The topics of the broker: names, partition counts, configs, and their partition logs.

Topic facts are journaled (``meta/topics.journal``) before they are acknowledged, so a topic
created, altered or deleted survives ``kill -9``. Each partition's records live in
``topics/<topic>-<partition>/`` as segment files owned by ``PartitionLog``, opened through
one ``OpenFiles`` cache shared by every partition.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.log._config import TopicConfig
from services.log._errors import ErrorCode, KafkaError
from services.log._files import OpenFiles
from services.log._journal import Journal
from services.log._partition import PartitionLog

_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
MAX_PARTITIONS = 10_000


@dataclass(kw_only=True, slots=True)
class Topic:
    """A topic and its open partition logs."""

    name: str
    topic_id: str
    config: TopicConfig
    overrides: dict[str, str]
    partitions: list[PartitionLog] = field(default_factory=list)


def validate_topic_name(name: str) -> None:
    """Raise INVALID_TOPIC_EXCEPTION unless ``name`` is a legal Kafka topic name."""
    if name in (".", "..") or not _LEGAL_NAME.fullmatch(name):
        raise KafkaError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f"topic name {name!r} is invalid: use 1-249 characters of [a-zA-Z0-9._-], "
            "and not '.' or '..'",
        )


class Catalog:
    """Creates, alters, deletes and finds topics; persists every change."""

    def __init__(
        self, data_dir: Path, defaults: TopicConfig, journal: Journal, files: OpenFiles
    ) -> None:
        self._data_dir = data_dir
        self._defaults = defaults
        self._journal = journal
        self._files = files
        self.topics: dict[str, Topic] = {}

    @classmethod
    def open(cls, data_dir: Path, defaults: TopicConfig, files: OpenFiles) -> Catalog:
        """Load the catalog and open (recover) every partition log."""
        journal = Journal.open(data_dir / "meta" / "topics.journal")
        catalog = cls(data_dir, defaults, journal, files)
        state: dict[str, dict[str, object]] = {}
        for entry in journal.replay():
            if entry["op"] == "put":
                state[entry["name"]] = entry
            elif entry["op"] == "delete":
                state.pop(entry["name"], None)
        for name, entry in state.items():
            overrides = dict(entry["overrides"])  # type: ignore[call-overload]
            topic = Topic(
                name=name,
                topic_id=str(entry["topic_id"]),
                config=defaults.with_kafka(overrides),
                overrides=overrides,
            )
            count = int(entry["partitions"])  # type: ignore[call-overload]
            topic.partitions = [catalog._open_partition(topic, p) for p in range(count)]
            catalog.topics[name] = topic
        # Compact the journal to the current state so it never grows without bound.
        journal.rewrite(catalog._entry(t) for t in catalog.topics.values())
        return catalog

    def __iter__(self) -> Iterator[Topic]:
        return iter(list(self.topics.values()))

    def get(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        return topic

    def partition(self, name: str, partition: int) -> PartitionLog:
        """The log of one partition; UNKNOWN_TOPIC_OR_PARTITION if there is none."""
        topic = self.get(name)
        if not 0 <= partition < len(topic.partitions):
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                f"topic {name!r} has no partition {partition}",
            )
        return topic.partitions[partition]

    def create(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str | None] | None = None,
        *,
        validate_only: bool = False,
    ) -> Topic | None:
        """Create a topic; raises the Kafka error a broker would answer with."""
        validate_topic_name(name)
        if name in self.topics:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise KafkaError(
                ErrorCode.INVALID_PARTITIONS,
                f"a topic needs 1 to {MAX_PARTITIONS} partitions, not {partitions}",
            )
        overrides = {k: v for k, v in (configs or {}).items() if v is not None}
        config = self._defaults.with_kafka(overrides)
        if validate_only:
            return None
        topic = Topic(name=name, topic_id=uuid.uuid4().hex, config=config, overrides=overrides)
        topic.partitions = [self._open_partition(topic, p) for p in range(partitions)]
        self._journal.append(self._entry(topic))
        self.topics[name] = topic
        return topic

    def delete(self, name: str) -> None:
        """Delete a topic and its data."""
        topic = self.get(name)
        self._journal.append({"op": "delete", "name": name})
        del self.topics[name]
        for log in topic.partitions:
            log.destroy()
        for p in range(len(topic.partitions)):
            shutil.rmtree(self._partition_dir(topic, p), ignore_errors=True)

    def add_partitions(self, name: str, count: int, *, validate_only: bool = False) -> None:
        """Grow a topic to ``count`` partitions (Kafka never shrinks one)."""
        topic = self.get(name)
        if count <= len(topic.partitions) or count > MAX_PARTITIONS:
            raise KafkaError(
                ErrorCode.INVALID_PARTITIONS,
                f"topic {name!r} has {len(topic.partitions)} partitions; the new count must be "
                f"larger and at most {MAX_PARTITIONS}, not {count}",
            )
        if validate_only:
            return
        for p in range(len(topic.partitions), count):
            topic.partitions.append(self._open_partition(topic, p))
        self._journal.append(self._entry(topic))

    def alter(
        self,
        name: str,
        changes: Mapping[str, str | None],
        *,
        replace_all: bool = False,
        validate_only: bool = False,
    ) -> None:
        """Apply config changes (``None`` deletes an override); ``replace_all`` is AlterConfigs."""
        topic = self.get(name)
        overrides = {} if replace_all else dict(topic.overrides)
        for key, value in changes.items():
            if value is None:
                overrides.pop(key, None)
            else:
                overrides[key] = value
        config = self._defaults.with_kafka(overrides)
        if validate_only:
            return
        topic.overrides = overrides
        topic.config = config
        for log in topic.partitions:
            log.config = config
        self._journal.append(self._entry(topic))

    def set_defaults(self, defaults: TopicConfig) -> None:
        """New broker-level topic defaults (dynamic broker configs): every topic takes them
        for the configs it does not override."""
        self._defaults = defaults
        for topic in self.topics.values():
            topic.config = defaults.with_kafka(topic.overrides)
            for log in topic.partitions:
                log.config = topic.config

    def close(self) -> None:
        for topic in self.topics.values():
            for log in topic.partitions:
                log.close()
        self._journal.close()

    def _partition_dir(self, topic: Topic, partition: int) -> Path:
        return self._data_dir / "topics" / f"{topic.name}-{partition}"

    def _open_partition(self, topic: Topic, partition: int) -> PartitionLog:
        return PartitionLog.open(
            self._partition_dir(topic, partition), config=topic.config, files=self._files
        )

    @staticmethod
    def _entry(topic: Topic) -> dict[str, object]:
        return {
            "op": "put",
            "name": topic.name,
            "topic_id": topic.topic_id,
            "partitions": len(topic.partitions),
            "overrides": topic.overrides,
        }
