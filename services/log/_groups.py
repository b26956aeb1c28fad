"""The consumer-group coordinator: Kafka's classic group protocol over asyncio.

It answers as Kafka's ``GroupCoordinator`` does, because aiokafka, librdkafka and faust rely on
the exact codes: MEMBER_ID_REQUIRED (KIP-394), static membership (KIP-345), the initial
rebalance delay (KIP-134), REBALANCE_IN_PROGRESS on heartbeats as the signal to rejoin.

JoinGroup and SyncGroup park their callers on futures until the rebalance (or the leader's
assignment) completes; everything else answers at once. Time comes from an injectable clock and
is acted on by :meth:`GroupCoordinator.tick`, which :meth:`GroupCoordinator.run` calls whenever
a deadline falls due; tests advance a fake clock and call ``tick()`` themselves. The state
transitions live in ``_rebalance.py``, the group's data in ``_group_state.py``.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Mapping

from services.log._errors import ErrorCode, KafkaError
from services.log._group_state import (
    CONSUMER_PROTOCOL_TYPE,
    Group,
    GroupDescription,
    GroupState,
    JoinResult,
    Member,
)
from services.log._offsets import OffsetAndMetadata, Offsets, OffsetStore, TopicPartition
from services.log._rebalance import Rebalancer


class GroupCoordinator:
    """Consumer groups of one broker, with their committed offsets in an :class:`OffsetStore`.

    Request handlers call the methods; the broker runs :meth:`run` in its task group and calls
    :meth:`close` on shutdown (the offset store stays open: its owner closes it). Timeouts are
    in milliseconds as on the wire; ``clock`` returns seconds. Groups are kept in memory only:
    after a restart members rejoin, as after a Kafka coordinator failover.
    """

    def __init__(
        self,
        offsets: OffsetStore,
        *,
        initial_rebalance_delay_ms: int,
        min_session_timeout_ms: int,
        max_session_timeout_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.offsets = offsets
        self._min_session_ms = min_session_timeout_ms
        self._max_session_ms = max_session_timeout_ms
        self._clock = clock
        self._groups: dict[str, Group] = {}
        self._closed = False
        self._rebalancer = Rebalancer(
            initial_delay=initial_rebalance_delay_ms / 1000, clock=clock, schedule=self._schedule
        )
        # run() sleeps until _sleeping_until; an earlier deadline set meanwhile wakes it.
        self._wakeup = asyncio.Event()
        self._sleeping_until = -math.inf

    async def join(
        self,
        *,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str,
        client_host: str,
        require_known_member_id: bool,
    ) -> JoinResult:
        """JoinGroup: wait for the rebalance to complete and answer with the new generation.

        ``require_known_member_id`` is true from JoinGroup v4. A ``rebalance_timeout_ms`` of 0
        or less means the session timeout (JoinGroup v0 has none). If the caller is cancelled
        (its connection closed) the member stays in the rebalance, as in Kafka, which cannot
        tell either; without heartbeats it is evicted afterwards.
        """
        if rebalance_timeout_ms <= 0:
            rebalance_timeout_ms = session_timeout_ms
        outcome = self._join(
            group_id=group_id,
            member_id=member_id,
            group_instance_id=group_instance_id,
            protocol_type=protocol_type,
            protocols=list(protocols),
            session_timeout_ms=session_timeout_ms,
            rebalance_timeout_ms=rebalance_timeout_ms,
            client_id=client_id,
            client_host=client_host,
            require_known_member_id=require_known_member_id,
        )
        if isinstance(outcome, JoinResult):
            return outcome
        return await asyncio.shield(outcome)

    async def sync(
        self,
        *,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        assignments: list[tuple[str, bytes]],
    ) -> tuple[ErrorCode, bytes]:
        """SyncGroup: the leader hands in assignments; every member waits for its own."""
        group, error = self._member_group(group_id, member_id, group_instance_id)
        if group is None:
            return (error, b"")
        if generation_id != group.generation_id:
            return (ErrorCode.ILLEGAL_GENERATION, b"")
        outcome = self._rebalancer.sync(group, group.members[member_id], assignments)
        if isinstance(outcome, tuple):
            return outcome
        return await asyncio.shield(outcome)

    def heartbeat(
        self, *, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        """Heartbeat: keep the session alive; REBALANCE_IN_PROGRESS tells the member to rejoin."""
        group, error = self._member_group(group_id, member_id, group_instance_id)
        if group is None:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        self._rebalancer.touch(group.members[member_id])
        if group.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(
        self, *, group_id: str, member_id: str, group_instance_id: str | None = None
    ) -> ErrorCode:
        """LeaveGroup: remove the member and rebalance the others at once.

        From LeaveGroup v3 a static member may be named by ``group_instance_id`` alone
        (``member_id`` ""), as ``kafka-consumer-groups --remove-members`` does.
        """
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group_instance_id is None and member_id in group.pending_members:
            del group.pending_members[member_id]
            self._rebalancer.try_complete(group)
            return ErrorCode.NONE
        if not member_id and group_instance_id is not None:
            member_id = group.static_members.get(group_instance_id, "")
        error = group.fenced(member_id, group_instance_id)
        if error is ErrorCode.NONE:
            self._rebalancer.remove(group, group.members[member_id])
        return error

    def describe(self, group_id: str) -> GroupDescription:
        """DescribeGroups for one group; ``Dead`` if unknown, ``Empty`` if it only has offsets."""
        group = self._groups.get(group_id)
        if group is not None and not self._closed:
            return group.describe()
        known = not self._closed and group_id in self.offsets.groups()
        return GroupDescription(
            error=ErrorCode.COORDINATOR_NOT_AVAILABLE if self._closed else ErrorCode.NONE,
            group_id=group_id,
            state=(GroupState.EMPTY if known else GroupState.DEAD).value,
            protocol_type="",
            protocol="",
            members=[],
        )

    def list_groups(self) -> list[tuple[str, str, str]]:
        """ListGroups: ``(group_id, protocol_type, state)``; a group that only has committed
        offsets is listed as Empty with no protocol type."""
        listed = {gid: (g.protocol_type, g.state.value) for gid, g in self._groups.items()}
        for group_id in self.offsets.groups():
            listed.setdefault(group_id, ("", GroupState.EMPTY.value))
        return [(gid, kind, state) for gid, (kind, state) in sorted(listed.items())]

    def delete(self, group_id: str) -> ErrorCode:
        """DeleteGroups: forget an empty group and its offsets.

        NON_EMPTY_GROUP while it has members, GROUP_ID_NOT_FOUND if it is unknown.
        """
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        group = self._groups.get(group_id)
        if group is not None and (group.state is not GroupState.EMPTY or group.pending_members):
            return ErrorCode.NON_EMPTY_GROUP
        if group is None and group_id not in self.offsets.groups():
            return ErrorCode.GROUP_ID_NOT_FOUND
        self.offsets.delete_group(group_id)
        self._groups.pop(group_id, None)
        return ErrorCode.NONE

    def commit_offsets(
        self,
        *,
        group_id: str,
        generation_id: int,
        member_id: str,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        group_instance_id: str | None = None,
    ) -> ErrorCode:
        """OffsetCommit; the offsets are on disk when this answers NONE.

        Generation -1 with member id "" commits without group management, allowed while the
        group has no members. As in Kafka, members may commit while a rebalance is prepared
        (consumers commit before giving up their partitions), not between JoinGroup and
        SyncGroup (REBALANCE_IN_PROGRESS). ``group_instance_id`` (OffsetCommit v7+) lets a
        replaced static member be told FENCED_INSTANCE_ID.
        """
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        group = self._groups.get(group_id)
        if generation_id < 0 and not member_id and group_instance_id is None:
            if group is not None and group.members:
                return ErrorCode.UNKNOWN_MEMBER_ID
        elif group is None:
            return ErrorCode.ILLEGAL_GENERATION
        else:
            error = group.fenced(member_id, group_instance_id)
            if error is not ErrorCode.NONE:
                return error
            if generation_id != group.generation_id:
                return ErrorCode.ILLEGAL_GENERATION
            if group.state is GroupState.COMPLETING_REBALANCE:
                return ErrorCode.REBALANCE_IN_PROGRESS
            self._rebalancer.touch(group.members[member_id])
        self.offsets.commit(group_id, offsets)
        return ErrorCode.NONE

    def delete_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """OffsetDelete, by Kafka's rules: the group-level error, or one error per partition.

        An Empty group (or one that only has offsets) loses the offsets asked for; a consumer
        group with members keeps those of topics they subscribe to (GROUP_SUBSCRIBED_TO_TOPIC);
        any other group with members is NON_EMPTY_GROUP. An Empty group left without offsets
        is gone, as after Kafka's cleanup.
        """
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, {}
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, {}
        group = self._groups.get(group_id)
        if group is None and group_id not in self.offsets.groups():
            return ErrorCode.GROUP_ID_NOT_FOUND, {}
        errors: dict[TopicPartition, ErrorCode] = {}
        if group is not None and group.state is not GroupState.EMPTY:
            if group.protocol_type != CONSUMER_PROTOCOL_TYPE:
                return ErrorCode.NON_EMPTY_GROUP, {}
            subscribed = group.subscribed_topics()  # None: unknown, so every topic is kept
            for tp in partitions:
                if subscribed is None or tp[0] in subscribed:
                    errors[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
        deletable = [tp for tp in partitions if tp not in errors]
        self.offsets.forget(group_id, deletable)
        errors.update(dict.fromkeys(deletable, ErrorCode.NONE))
        if (
            group is not None
            and group.state is GroupState.EMPTY
            and not group.pending_members
            and group_id not in self.offsets.groups()
        ):
            del self._groups[group_id]
        return ErrorCode.NONE, errors

    def fetch_offsets(self, *, group_id: str, partitions: list[TopicPartition] | None) -> Offsets:
        """OffsetFetch: committed offsets, ``(-1, "")`` for partitions never committed.

        Raises ``KafkaError(COORDINATOR_NOT_AVAILABLE)`` after :meth:`close`.
        """
        if self._closed:
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE, "the broker is shutting down")
        return self.offsets.fetch(group_id, partitions)

    def tick(self) -> None:
        """Act on every deadline due by the clock: expire sessions, end rebalance waits."""
        if self._closed:
            return
        now = self._clock()
        for group in list(self._groups.values()):
            self._rebalancer.expire(group, now)

    async def run(self) -> None:
        """Call :meth:`tick` whenever a deadline falls due, until :meth:`close` or cancelled."""
        while not self._closed:
            self._wakeup.clear()
            self.tick()
            self._sleeping_until = min(
                (group.next_deadline() for group in self._groups.values()), default=math.inf
            )
            delay = self._sleeping_until - self._clock()
            try:
                async with asyncio.timeout(max(delay, 0.0) if math.isfinite(delay) else None):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def close(self) -> None:
        """Answer every parked JoinGroup and SyncGroup with COORDINATOR_NOT_AVAILABLE.

        Clients then look for the coordinator again. Idempotent; the offset store stays open.
        """
        if self._closed:
            return
        self._closed = True
        for group in self._groups.values():
            for member in group.members.values():
                member.answer_join(
                    JoinResult(
                        error=ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id=member.member_id
                    )
                )
                member.answer_sync((ErrorCode.COORDINATOR_NOT_AVAILABLE, b""))
        self._wakeup.set()

    def _join(
        self,
        *,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str,
        client_host: str,
        require_known_member_id: bool,
    ) -> JoinResult | asyncio.Future[JoinResult]:
        if self._closed:
            return JoinResult(error=ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id=member_id)
        if not group_id:
            return JoinResult(error=ErrorCode.INVALID_GROUP_ID, member_id=member_id)
        if not self._min_session_ms <= session_timeout_ms <= self._max_session_ms:
            return JoinResult(error=ErrorCode.INVALID_SESSION_TIMEOUT, member_id=member_id)
        group = self._groups.get(group_id)
        if group is None and member_id:
            return JoinResult(error=ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id)
        if group is None:
            group = self._groups[group_id] = Group(group_id=group_id)
        if not group.supports(protocol_type, protocols, member_id):
            return JoinResult(error=ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)
        now = self._clock()
        session_timeout = session_timeout_ms / 1000
        rebalance_timeout = rebalance_timeout_ms / 1000

        def new_member(new_id: str) -> Member:
            return Member(
                member_id=new_id,
                group_instance_id=group_instance_id,
                client_id=client_id,
                client_host=client_host,
                protocol_type=protocol_type,
                protocols=protocols,
                session_timeout=session_timeout,
                rebalance_timeout=rebalance_timeout,
                session_deadline=now + session_timeout,
            )

        if not member_id:
            new_id = f"{client_id}-{uuid.uuid4()}"
            if group_instance_id is not None:
                old_id = group.static_members.get(group_instance_id)
                if old_id is not None:
                    return self._rebalancer.replace_static(group, old_id, new_member(new_id))
            elif require_known_member_id:
                # KIP-394: the client retries with this id, so a join whose answer was lost
                # does not leave a member behind.
                group.pending_members[new_id] = now + session_timeout
                self._schedule(now + session_timeout)
                return JoinResult(error=ErrorCode.MEMBER_ID_REQUIRED, member_id=new_id)
            return self._rebalancer.add(group, new_member(new_id))
        if group_instance_id is None and member_id in group.pending_members:
            del group.pending_members[member_id]
            return self._rebalancer.add(group, new_member(member_id))
        error = group.fenced(member_id, group_instance_id)
        if error is not ErrorCode.NONE:
            return JoinResult(error=error, member_id=member_id)
        member = group.members[member_id]
        member.session_timeout = session_timeout
        member.rebalance_timeout = rebalance_timeout
        if len(group.members) == 1:
            member.protocol_type = group.protocol_type = protocol_type
        return self._rebalancer.rejoin(group, member, protocols)

    def _member_group(
        self, group_id: str, member_id: str, group_instance_id: str | None
    ) -> tuple[Group | None, ErrorCode]:
        """The group of a validated member, or None and the error to answer."""
        if self._closed:
            return None, ErrorCode.COORDINATOR_NOT_AVAILABLE
        if not group_id:
            return None, ErrorCode.INVALID_GROUP_ID
        group = self._groups.get(group_id)
        if group is None:
            return None, ErrorCode.UNKNOWN_MEMBER_ID
        error = group.fenced(member_id, group_instance_id)
        if error is not ErrorCode.NONE:
            return None, error
        return group, ErrorCode.NONE

    def _schedule(self, deadline: float) -> None:
        # Heartbeats only push deadlines later, so they rarely wake the loop.
        if deadline < self._sleeping_until:
            self._wakeup.set()
