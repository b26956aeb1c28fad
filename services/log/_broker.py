"""The broker: storage, coordinators and the TCP listener, owned by one async context."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from services.log import (
    _handle_acls,
    _handle_admin,
    _handle_cluster,
    _handle_configs,
    _handle_data,
    _handle_groups,
    _handle_scram,
    _handle_txn,
)
from services.log._acls import AclStore
from services.log._apis import ApiKey
from services.log._catalog import Catalog
from services.log._codec import Fields
from services.log._config import BrokerConfig, TopicConfig
from services.log._dynamic_config import CLUSTER_DEFAULT, DynamicConfigStore, topic_defaults
from services.log._errors import (
    BrokerClosedError,
    ErrorCode,
    KafkaError,
    StorageError,
    TooManyOpenFilesError,
)
from services.log._files import OpenFiles, default_max_open_files
from services.log._groups import GroupCoordinator
from services.log._offsets import OffsetStore
from services.log._partition import PartitionLog
from services.log._scram import ScramStore
from services.log._server import Connection, Handler, RequestContext
from services.log._transactions import TransactionCoordinator

log = logging.getLogger("netscript.log")

LoopErrorHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
# asyncio reports a failed accept() up to once per pending connection, every second.
_ACCEPT_REPORT_INTERVAL_S = 10.0

_HANDLERS: dict[ApiKey, Callable[..., Awaitable[Fields | None]]] = {
    ApiKey.PRODUCE: _handle_data.produce,
    ApiKey.FETCH: _handle_data.fetch,
    ApiKey.LIST_OFFSETS: _handle_data.list_offsets,
    ApiKey.DELETE_RECORDS: _handle_data.delete_records,
    ApiKey.API_VERSIONS: _handle_cluster.api_versions,
    ApiKey.METADATA: _handle_cluster.metadata,
    ApiKey.DESCRIBE_CLUSTER: _handle_cluster.describe_cluster,
    ApiKey.CREATE_TOPICS: _handle_admin.create_topics,
    ApiKey.DELETE_TOPICS: _handle_admin.delete_topics,
    ApiKey.CREATE_PARTITIONS: _handle_admin.create_partitions,
    ApiKey.DESCRIBE_CONFIGS: _handle_configs.describe_configs,
    ApiKey.ALTER_CONFIGS: _handle_configs.alter_configs,
    ApiKey.INCREMENTAL_ALTER_CONFIGS: _handle_configs.incremental_alter_configs,
    ApiKey.CREATE_ACLS: _handle_acls.create_acls,
    ApiKey.DESCRIBE_ACLS: _handle_acls.describe_acls,
    ApiKey.DELETE_ACLS: _handle_acls.delete_acls,
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: _handle_scram.describe_user_scram_credentials,
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: _handle_scram.alter_user_scram_credentials,
    ApiKey.FIND_COORDINATOR: _handle_groups.find_coordinator,
    ApiKey.JOIN_GROUP: _handle_groups.join_group,
    ApiKey.SYNC_GROUP: _handle_groups.sync_group,
    ApiKey.HEARTBEAT: _handle_groups.heartbeat,
    ApiKey.LEAVE_GROUP: _handle_groups.leave_group,
    ApiKey.DESCRIBE_GROUPS: _handle_groups.describe_groups,
    ApiKey.LIST_GROUPS: _handle_groups.list_groups,
    ApiKey.DELETE_GROUPS: _handle_groups.delete_groups,
    ApiKey.OFFSET_COMMIT: _handle_groups.offset_commit,
    ApiKey.OFFSET_FETCH: _handle_groups.offset_fetch,
    ApiKey.OFFSET_DELETE: _handle_groups.offset_delete,
    ApiKey.INIT_PRODUCER_ID: _handle_txn.init_producer_id,
    ApiKey.ADD_PARTITIONS_TO_TXN: _handle_txn.add_partitions_to_txn,
    ApiKey.ADD_OFFSETS_TO_TXN: _handle_txn.add_offsets_to_txn,
    ApiKey.END_TXN: _handle_txn.end_txn,
    ApiKey.TXN_OFFSET_COMMIT: _handle_txn.txn_offset_commit,
}


class Broker:
    """A single-node, durable, Kafka-compatible broker.

    Use ``Broker.serve(...)``: the broker is listening when the ``async with`` block starts and
    has flushed and closed its files when it ends::

        async with Broker.serve(port=0, data_dir=tmp) as broker:
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    """

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.closing = False
        self._append_event = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] = (config.host, config.port)
        self._connections: set[asyncio.Task[None]] = set()
        self._lock_fd: int | None = None
        self._previous_loop_handler: LoopErrorHandler | None = None
        self._accept_failures = 0
        self._accept_quiet_until = 0.0
        self.open_files = OpenFiles(config.max_open_files or default_max_open_files())
        data_dir = Path(config.data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data directory {data_dir}: {exc}") from exc
        self._lock_data_dir(data_dir)
        self.dynamic_configs = DynamicConfigStore.open(data_dir / "meta" / "broker-configs.journal")
        self.catalog = Catalog.open(data_dir, self._topic_defaults(), self.open_files)
        self.offsets = OffsetStore.open(data_dir / "meta" / "offsets.journal")
        self.acls = AclStore.open(data_dir / "meta" / "acls.journal")
        self.scram = ScramStore.open(data_dir / "meta" / "scram.journal")
        self.groups = GroupCoordinator(
            self.offsets,
            initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms=config.group_min_session_timeout_ms,
            max_session_timeout_ms=config.group_max_session_timeout_ms,
        )
        self.transactions = TransactionCoordinator.open(
            data_dir / "meta" / "transactions.journal",
            self.catalog,
            self.offsets,
            max_timeout_ms=config.transaction_max_timeout_ms,
            on_markers=self.notify_appended,
        )
        self._handlers: dict[int, Handler] = {
            int(key): functools.partial(handler, self) for key, handler in _HANDLERS.items()
        }

    @classmethod
    @contextlib.asynccontextmanager
    async def serve(
        cls, config: BrokerConfig | None = None, **settings: Any
    ) -> AsyncIterator[Broker]:
        """Run a broker for the duration of the block.

        ``settings`` override fields of ``config`` (or of the defaults), e.g.
        ``Broker.serve(port=0, data_dir=path)``; ``port=0`` picks a free port.
        Raises ``StorageError`` if the data directory is unusable or in use by another broker.
        """
        base = config or BrokerConfig()
        if settings:
            if "data_dir" in settings:
                settings["data_dir"] = Path(settings["data_dir"])
            base = dataclasses.replace(base, **settings)
        broker = cls(base)
        try:
            async with asyncio.TaskGroup() as tasks:
                await broker._start()
                loops = [
                    tasks.create_task(broker.groups.run(), name="group-coordinator"),
                    tasks.create_task(broker.transactions.run(), name="transaction-timeouts"),
                    tasks.create_task(broker._flush_loop(), name="flusher"),
                    tasks.create_task(broker._clean_loop(), name="cleaner"),
                ]
                try:
                    yield broker
                finally:
                    await broker._stop()
                    for loop in loops:
                        loop.cancel()
        finally:
            broker._close_storage()

    # -- lifecycle ----------------------------------------------------------------------------

    def _lock_data_dir(self, data_dir: Path) -> None:
        fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StorageError(
                f"data directory {data_dir} is in use by another broker; stop it or use "
                "another --data-dir"
            ) from exc
        self._lock_fd = fd

    async def _start(self) -> None:
        await self.transactions.recover()
        self._server = await asyncio.start_server(
            self._on_connection, self.config.host, self.config.port, reuse_address=True
        )
        sock = self._server.sockets[0].getsockname()
        self._address = (sock[0], sock[1])
        loop = asyncio.get_running_loop()
        self._previous_loop_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._on_loop_error)
        log.info(
            "log broker listening on %s:%d (at most %d segment files open)",
            *self._address,
            self.open_files.limit,
        )

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Say what to do when accept() runs out of descriptors; pass anything else on.

        asyncio stops accepting for a second and tries again, while every open connection
        goes on being served; its own report is a traceback per pending connection and retry.
        This one is a line every ``_ACCEPT_REPORT_INTERVAL_S`` at most.
        """
        exc = context.get("exception")
        sock = context.get("socket")
        ours = (
            self._server is not None
            and sock is not None
            and any(listening.fileno() == sock.fileno() for listening in self._server.sockets)
        )
        if ours and isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            self._accept_failures += 1
            now = time.monotonic()
            if now >= self._accept_quiet_until:
                log.error(
                    "cannot accept connections: %s (%d failed accept() calls; open: %d "
                    "connections, %d of at most %d segment files); clients wait while accept "
                    "is retried every second. Raise `ulimit -n` or lower --max-open-files",
                    exc.strerror,
                    self._accept_failures,
                    len(self._connections),
                    self.open_files.open_count,
                    self.open_files.limit,
                )
                self._accept_failures = 0
                self._accept_quiet_until = now + _ACCEPT_REPORT_INTERVAL_S
            return
        if self._previous_loop_handler is not None:
            self._previous_loop_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    async def _stop(self) -> None:
        self.closing = True
        loop = asyncio.get_running_loop()
        if loop.get_exception_handler() == self._on_loop_error:
            loop.set_exception_handler(self._previous_loop_handler)
        self.notify_appended()  # release long-polling fetches
        self.groups.close()
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            if self._connections:
                await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
        for topic in self.catalog:
            for partition in topic.partitions:
                await partition.sync()

    def _close_storage(self) -> None:
        self.transactions.close()
        self.scram.close()
        self.acls.close()
        self.offsets.close()
        self.catalog.close()
        self.dynamic_configs.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await Connection(reader, writer, self._handlers).serve()
        finally:
            self._connections.discard(task)

    async def _flush_loop(self) -> None:
        # acks=1 writes are acknowledged before they are fsynced; this bounds how long they
        # stay only in the page cache.
        interval = self.config.flush_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            for topic in self.catalog:
                for partition in topic.partitions:
                    try:
                        await partition.sync()
                    except TooManyOpenFilesError as exc:
                        # Connections hold every descriptor; the data stays pending for the
                        # next round. (A failed fsync is not retried: it stops the broker.)
                        log.warning("cannot flush %s yet: %s", topic.name, exc)

    async def _clean_loop(self) -> None:
        interval = self.config.cleaner_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            self.run_cleaner()

    def run_cleaner(self, now_ms: int | None = None) -> int:
        """Apply retention and compaction to every partition now; returns bytes freed."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        freed = 0
        for topic in self.catalog:
            for partition in topic.partitions:
                try:
                    if topic.config.delete:
                        freed += partition.enforce_retention(now)
                    if topic.config.compact:
                        freed += partition.compact(now)
                except (OSError, KafkaError):
                    log.exception("cleaning %s failed; will retry", topic.name)
        return freed

    # -- used by handlers ---------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients; the broker is listening."""
        if self._server is None:
            raise BrokerClosedError("the broker is not serving; use `async with Broker.serve()`")
        host, port = self.advertised_address
        return f"{host}:{port}"

    @property
    def advertised_address(self) -> tuple[str, int]:
        host = self.config.advertised_host or self._address[0]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return host, self.config.advertised_port or self._address[1]

    def ensure_topic(self, topic: str, *, allow_create: bool = True) -> None:
        """Create ``topic`` with the default partitions if it is missing and auto-creation is on.

        Raises ``KafkaError`` (UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION) otherwise.
        """
        if topic in self.catalog.topics:
            return
        if not (allow_create and self.config.auto_create_topics):
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {topic!r} does not exist"
            )
        self.catalog.create(topic, self.config.default_partitions)

    def partition_for_write(self, topic: str, partition: int) -> PartitionLog:
        """The partition a produce goes to, creating the topic if auto-creation is on."""
        self.ensure_topic(topic)
        return self.catalog.partition(topic, partition)

    def apply_dynamic_configs(self) -> None:
        """Let every topic see the broker-level topic defaults set dynamically."""
        self.catalog.set_defaults(self._topic_defaults())

    def _topic_defaults(self) -> TopicConfig:
        return topic_defaults(
            self.config.topic_defaults,
            self.dynamic_configs.overrides(CLUSTER_DEFAULT),
            self.dynamic_configs.overrides(str(self.node_id)),
        )

    def append_event(self) -> asyncio.Event:
        """An event set at the next append (or transaction marker, or shutdown)."""
        return self._append_event

    def notify_appended(self) -> None:
        event, self._append_event = self._append_event, asyncio.Event()
        event.set()


__all__ = ["Broker", "ErrorCode", "KafkaError", "RequestContext"]
