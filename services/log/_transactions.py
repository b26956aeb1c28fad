"""The transaction coordinator: producer ids, epochs, and commit/abort markers.

A transactional producer registers its ``transactional.id`` (InitProducerId), adds partitions
and consumer-group offsets to its transaction, and ends it (EndTxn). Ending writes a commit or
abort control batch to every partition of the transaction — which advances their last stable
offset so ``read_committed`` consumers may read on — and applies or discards the offsets it
staged. Every state change is journaled and fsynced before it is acknowledged; a transaction
caught half-ended by a crash is finished when the broker starts again, and one left open by a
vanished producer is aborted after its timeout, with its epoch bumped so the zombie is fenced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from services.log._catalog import Catalog
from services.log._errors import ErrorCode, KafkaError
from services.log._journal import Journal
from services.log._offsets import OffsetStore

log = logging.getLogger("netscript.log")

MAX_EPOCH = 32767
# How often abandoned transactions are looked for.
TIMEOUT_CHECK_SECONDS = 1.0


@dataclass(kw_only=True, slots=True)
class Transaction:
    """The coordinator's view of one ``transactional.id``."""

    transactional_id: str
    producer_id: int
    epoch: int
    timeout_ms: int
    state: str = "empty"  # empty | ongoing | prepare_commit | prepare_abort
    partitions: set[tuple[str, int]] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    started_ms: int = 0
    last_result: str = ""  # "commit" | "abort" once one ended

    def to_entry(self) -> dict[str, object]:
        return {
            "op": "txn",
            "id": self.transactional_id,
            "pid": self.producer_id,
            "epoch": self.epoch,
            "timeout_ms": self.timeout_ms,
            "state": self.state,
            "partitions": sorted(self.partitions),
            "groups": sorted(self.groups),
            "started_ms": self.started_ms,
            "last_result": self.last_result,
        }


def _now_ms() -> int:
    return int(time.time() * 1000)


class TransactionCoordinator:
    """Hands out producer ids and drives transactions to commit or abort."""

    def __init__(
        self,
        journal: Journal,
        catalog: Catalog,
        offsets: OffsetStore,
        *,
        max_timeout_ms: int,
        on_markers: Callable[[], None],
    ) -> None:
        self._journal = journal
        self._catalog = catalog
        self._offsets = offsets
        self._max_timeout_ms = max_timeout_ms
        self._on_markers = on_markers
        self._next_producer_id = 1000
        self._txns: dict[str, Transaction] = {}
        self._lock = asyncio.Lock()

    @classmethod
    def open(
        cls,
        path: Path,
        catalog: Catalog,
        offsets: OffsetStore,
        *,
        max_timeout_ms: int,
        on_markers: Callable[[], None],
    ) -> TransactionCoordinator:
        journal = Journal.open(path)
        coordinator = cls(
            journal, catalog, offsets, max_timeout_ms=max_timeout_ms, on_markers=on_markers
        )
        for entry in journal.replay():
            if entry["op"] == "pid":
                coordinator._next_producer_id = int(entry["next"])
            elif entry["op"] == "txn":
                coordinator._txns[entry["id"]] = Transaction(
                    transactional_id=entry["id"],
                    producer_id=entry["pid"],
                    epoch=entry["epoch"],
                    timeout_ms=entry["timeout_ms"],
                    state=entry["state"],
                    partitions={(t, p) for t, p in entry["partitions"]},
                    groups=set(entry["groups"]),
                    started_ms=entry["started_ms"],
                    last_result=entry["last_result"],
                )
        journal.rewrite(coordinator._snapshot())
        return coordinator

    async def recover(self) -> None:
        """Finish transactions that a crash left between prepare and complete."""
        for txn in list(self._txns.values()):
            if txn.state in ("prepare_commit", "prepare_abort"):
                await self._complete(txn, commit=txn.state == "prepare_commit")

    def close(self) -> None:
        self._journal.close()

    # -- producer ids -------------------------------------------------------------------------

    def _allocate_producer_id(self) -> int:
        producer_id = self._next_producer_id
        self._next_producer_id += 1
        self._journal.append({"op": "pid", "next": self._next_producer_id})
        return producer_id

    async def init_producer_id(
        self, transactional_id: str | None, timeout_ms: int
    ) -> tuple[int, int]:
        """InitProducerId: a fresh idempotent producer, or the next epoch of a transactional one.

        Registering an existing ``transactional.id`` aborts its open transaction and fences the
        previous instance by bumping the epoch.
        """
        if not transactional_id:
            return self._allocate_producer_id(), 0
        if not 0 < timeout_ms <= self._max_timeout_ms:
            raise KafkaError(
                ErrorCode.INVALID_TRANSACTION_TIMEOUT,
                f"transaction.timeout.ms must be in 1..{self._max_timeout_ms}, not {timeout_ms}",
            )
        async with self._lock:
            txn = self._txns.get(transactional_id)
            if txn is None:
                txn = Transaction(
                    transactional_id=transactional_id,
                    producer_id=self._allocate_producer_id(),
                    epoch=0,
                    timeout_ms=timeout_ms,
                )
                self._txns[transactional_id] = txn
            else:
                if txn.state != "empty":
                    await self._bump_and_abort(txn)
                if txn.epoch >= MAX_EPOCH - 1:
                    txn.producer_id, txn.epoch = self._allocate_producer_id(), 0
                else:
                    txn.epoch += 1
                txn.timeout_ms = timeout_ms
            self._journal.append(txn.to_entry())
            return txn.producer_id, txn.epoch

    # -- transaction membership ---------------------------------------------------------------

    def _check(self, transactional_id: str, producer_id: int, epoch: int) -> Transaction:
        txn = self._txns.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            raise KafkaError(
                ErrorCode.INVALID_PRODUCER_ID_MAPPING,
                f"producer {producer_id} is not registered for transactional id "
                f"{transactional_id!r}; call InitProducerId first",
            )
        if epoch != txn.epoch:
            raise KafkaError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"epoch {epoch} of {transactional_id!r} was fenced by epoch {txn.epoch}",
            )
        if txn.state in ("prepare_commit", "prepare_abort"):
            raise KafkaError(ErrorCode.CONCURRENT_TRANSACTIONS, "the transaction is ending")
        return txn

    def _begin(self, txn: Transaction) -> None:
        if txn.state == "empty":
            txn.state = "ongoing"
            txn.started_ms = _now_ms()

    async def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        partitions: Iterable[tuple[str, int]],
    ) -> dict[tuple[str, int], ErrorCode]:
        """AddPartitionsToTxn; unknown partitions fail and the others are not attempted."""
        async with self._lock:
            txn = self._check(transactional_id, producer_id, epoch)
            wanted = list(partitions)
            unknown = set()
            for topic, partition in wanted:
                try:
                    self._catalog.partition(topic, partition)
                except KafkaError:
                    unknown.add((topic, partition))
            if unknown:
                return {
                    tp: (
                        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                        if tp in unknown
                        else ErrorCode(55)  # OPERATION_NOT_ATTEMPTED
                    )
                    for tp in wanted
                }
            self._begin(txn)
            txn.partitions.update(wanted)
            self._journal.append(txn.to_entry())
            return dict.fromkeys(wanted, ErrorCode.NONE)

    async def add_offsets(
        self, transactional_id: str, producer_id: int, epoch: int, group_id: str
    ) -> None:
        """AddOffsetsToTxn: the group's offsets will be committed with the transaction."""
        async with self._lock:
            txn = self._check(transactional_id, producer_id, epoch)
            self._begin(txn)
            txn.groups.add(group_id)
            self._journal.append(txn.to_entry())

    def stage_offsets(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        group_id: str,
        offsets: dict[tuple[str, int], tuple[int, str, int]],
    ) -> None:
        """TxnOffsetCommit: offsets become visible only if the transaction commits."""
        txn = self._check(transactional_id, producer_id, epoch)
        if group_id not in txn.groups:
            raise KafkaError(
                ErrorCode.INVALID_TXN_STATE,
                f"group {group_id!r} was not added to the transaction; call AddOffsetsToTxn",
            )
        self._offsets.stage(producer_id, group_id, offsets)

    async def end(self, transactional_id: str, producer_id: int, epoch: int, commit: bool) -> None:
        """EndTxn: write the markers, apply or drop the staged offsets."""
        async with self._lock:
            txn = self._check(transactional_id, producer_id, epoch)
            wanted = "commit" if commit else "abort"
            if txn.state == "empty":
                if txn.last_result == wanted:
                    return  # a retried EndTxn whose answer was lost
                raise KafkaError(
                    ErrorCode.INVALID_TXN_STATE,
                    f"{transactional_id!r} has no transaction to {wanted}",
                )
            await self._complete(txn, commit=commit)

    # -- ending -------------------------------------------------------------------------------

    async def _complete(self, txn: Transaction, *, commit: bool) -> None:
        txn.state = "prepare_commit" if commit else "prepare_abort"
        self._journal.append(txn.to_entry())
        now = _now_ms()
        logs = []
        for topic, partition in sorted(txn.partitions):
            try:
                partition_log = self._catalog.partition(topic, partition)
            except KafkaError:
                continue  # deleted while the transaction was open
            partition_log.append_control(
                producer_id=txn.producer_id,
                producer_epoch=txn.epoch,
                commit=commit,
                now_ms=now,
            )
            logs.append(partition_log)
        await asyncio.gather(*(partition_log.sync() for partition_log in logs))
        self._offsets.complete(txn.producer_id, commit)
        txn.state = "empty"
        txn.last_result = "commit" if commit else "abort"
        txn.partitions.clear()
        txn.groups.clear()
        self._journal.append(txn.to_entry())
        self._on_markers()

    async def _bump_and_abort(self, txn: Transaction) -> None:
        # The abort markers carry the bumped epoch, so the old instance is fenced on every
        # partition of its transaction, not only at the coordinator.
        if txn.state == "ongoing":
            txn.epoch += 1
            await self._complete(txn, commit=False)
        else:
            await self._complete(txn, commit=txn.state == "prepare_commit")

    async def run(self) -> None:
        """Abort transactions whose producer went silent past their timeout."""
        while True:
            await asyncio.sleep(TIMEOUT_CHECK_SECONDS)
            now = _now_ms()
            async with self._lock:
                for txn in list(self._txns.values()):
                    if txn.state == "ongoing" and now - txn.started_ms > txn.timeout_ms:
                        log.info(
                            "aborting transaction of %r: open for more than %d ms",
                            txn.transactional_id,
                            txn.timeout_ms,
                        )
                        await self._bump_and_abort(txn)

    def _snapshot(self) -> list[dict[str, object]]:
        entries: list[dict[str, object]] = [{"op": "pid", "next": self._next_producer_id}]
        entries.extend(txn.to_entry() for txn in self._txns.values())
        return entries
