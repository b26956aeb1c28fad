"""The consumer-group coordinator: Kafka's classic rebalance protocol over asyncio.

It follows Kafka's ``GroupCoordinator`` closely, because aiokafka, librdkafka and faust rely on
its exact answers: MEMBER_ID_REQUIRED (KIP-394), static membership (KIP-345), the initial
rebalance delay (KIP-134), REBALANCE_IN_PROGRESS on heartbeats as the signal to rejoin.

JoinGroup and SyncGroup park their callers on futures until the rebalance (the leader's
assignment) completes. Everything else answers at once. Time is read from an injectable clock
and acted on by :meth:`GroupCoordinator.tick`, which :meth:`GroupCoordinator.run` calls whenever
a deadline falls due; tests advance a fake clock and call ``tick()`` themselves.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Mapping

from services.log._errors import ErrorCode, KafkaError
from services.log._group_state import (
    Group,
    GroupDescription,
    GroupState,
    JoinResult,
    Member,
    SyncResult,
)
from services.log._offsets import OffsetAndMetadata, Offsets, OffsetStore, TopicPartition

_EMPTY, _PREPARING, _COMPLETING, _STABLE = (
    GroupState.EMPTY,
    GroupState.PREPARING_REBALANCE,
    GroupState.COMPLETING_REBALANCE,
    GroupState.STABLE,
)


class GroupCoordinator:
    """Consumer groups of one broker, with their committed offsets in an :class:`OffsetStore`.

    Request handlers call the methods; the broker runs :meth:`run` in its task group and calls
    :meth:`close` on shutdown (the offset store stays open: its owner closes it). Timeouts are in
    milliseconds as on the wire; ``clock`` returns seconds.
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
        self._initial_delay = initial_rebalance_delay_ms / 1000
        self._min_session_ms = min_session_timeout_ms
        self._max_session_ms = max_session_timeout_ms
        self._clock = clock
        self._groups: dict[str, Group] = {}
        self._closed = False
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
        or less (JoinGroup v0 has none) means the session timeout. If the caller is cancelled
        (its connection closed), the member stays in the rebalance, as in Kafka, which cannot
        tell either; its session then expires.
        """
        outcome = self._join(
            group_id=group_id,
            member_id=member_id,
            group_instance_id=group_instance_id,
            protocol_type=protocol_type,
            protocols=list(protocols),
            session_timeout=session_timeout_ms / 1000,
            rebalance_timeout=(rebalance_timeout_ms if rebalance_timeout_ms > 0 else
                               session_timeout_ms) / 1000,
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
        outcome = self._sync(group_id, generation_id, member_id, group_instance_id, assignments)
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
        self._touch(group.members[member_id])
        if group.state is _PREPARING:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(
        self, *, group_id: str, member_id: str, group_instance_id: str | None = None
    ) -> ErrorCode:
        """LeaveGroup: remove the member and rebalance the others at once.

        From LeaveGroup v3 a member may be named by ``group_instance_id`` alone (member id "").
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
            self._try_complete_join(group)
            return ErrorCode.NONE
        if not member_id and group_instance_id is not None:
            member_id = group.static_members.get(group_instance_id, "")
        error = group.fenced(member_id, group_instance_id)
        if error is not ErrorCode.NONE:
            return error
        self._remove_member(group, group.members[member_id])
        return ErrorCode.NONE

    def describe(self, group_id: str) -> GroupDescription:
        """DescribeGroups for one group; a group known only by its offsets is ``Empty``."""
        if self._closed:
            return GroupDescription(
                error=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                group_id=group_id,
                state=GroupState.DEAD.value,
                protocol_type="",
                protocol="",
                members=[],
            )
        group = self._groups.get(group_id)
        if group is not None:
            return group.describe()
        known = group_id in self.offsets.groups()
        return GroupDescription(
            error=ErrorCode.NONE,
            group_id=group_id,
            state=(GroupState.EMPTY if known else GroupState.DEAD).value,
            protocol_type="",
            protocol="",
            members=[],
        )

    def list_groups(self) -> list[tuple[str, str]]:
        """ListGroups: ``(group_id, protocol_type)``, including groups with only offsets."""
        listed = {gid: g.protocol_type for gid, g in self._groups.items()}
        for group_id in self.offsets.groups():
            listed.setdefault(group_id, "")
        return sorted(listed.items())

    def delete_group(self, group_id: str) -> ErrorCode:
        """DeleteGroups: forget an Empty group and its offsets (NON_EMPTY_GROUP otherwise)."""
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        group = self._groups.get(group_id)
        if group is not None and (group.state is not _EMPTY or group.pending_members):
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
        """OffsetCommit, durable when it returns NONE.

        Generation -1 with member id "" is a commit without group management, allowed while
        the group has no members. Like Kafka, members may commit while a rebalance is being
        prepared (consumers commit before giving up partitions) but not between JoinGroup and
        SyncGroup (REBALANCE_IN_PROGRESS).
        """
        error = self._validate_commit(group_id, generation_id, member_id, group_instance_id)
        if error is ErrorCode.NONE:
            self.offsets.commit(group_id, offsets)
        return error

    def commit_txn_offsets(
        self,
        *,
        producer_id: int,
        group_id: str,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        generation_id: int = -1,
        member_id: str = "",
        group_instance_id: str | None = None,
    ) -> ErrorCode:
        """TxnOffsetCommit: stage offsets until EndTxn (``OffsetStore.complete``).

        Before v3 the request carries no member, so only a given member is validated.
        """
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        group = self._groups.get(group_id)
        if generation_id >= 0 or member_id or group_instance_id is not None:
            if group is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            error = group.fenced(member_id, group_instance_id)
            if error is not ErrorCode.NONE:
                return error
            if generation_id != group.generation_id:
                return ErrorCode.ILLEGAL_GENERATION
        self.offsets.stage(producer_id, group_id, offsets)
        return ErrorCode.NONE

    def fetch_offsets(
        self, *, group_id: str, partitions: list[TopicPartition] | None
    ) -> Offsets:
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
            for pending_id, deadline in list(group.pending_members.items()):
                if deadline <= now:
                    del group.pending_members[pending_id]
                    self._try_complete_join(group)
            for member in list(group.members.values()):
                # Parked members are not expected to heartbeat; the rebalance timeout bounds them.
                parked = member.join_waiter is not None or member.sync_waiter is not None
                current = group.members.get(member.member_id) is member
                if current and not parked and member.session_deadline <= now:
                    self._remove_member(group, member)
            if group.state is _PREPARING and group.join_deadline <= now:
                self._on_join_deadline(group, now)
            if (
                group.state in (_COMPLETING, _STABLE)
                and group.sync_deadline is not None
                and group.sync_deadline <= now
            ):
                # The leader or some member never synced: drop those that did not, start over.
                for missing in list(group.pending_sync):
                    if missing in group.members:
                        self._drop(group, group.members[missing])
                self._prepare_rebalance(group)

    async def run(self) -> None:
        """Call :meth:`tick` whenever a deadline falls due, until :meth:`close` or cancelled."""
        while not self._closed:
            self._wakeup.clear()
            self.tick()
            self._sleeping_until = self._next_deadline()
            delay = self._sleeping_until - self._clock()
            try:
                async with asyncio.timeout(max(delay, 0.0) if math.isfinite(delay) else None):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def close(self) -> None:
        """Answer every parked JoinGroup/SyncGroup with COORDINATOR_NOT_AVAILABLE; idempotent.

        Clients then look for the coordinator again. The offset store is not closed.
        """
        if self._closed:
            return
        self._closed = True
        for group in self._groups.values():
            for member in group.members.values():
                member.answer_join(JoinResult(error=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                                              member_id=member.member_id))
                member.answer_sync((ErrorCode.COORDINATOR_NOT_AVAILABLE, b""))
        self._wakeup.set()

    # -- JoinGroup ---------------------------------------------------------------------------

    def _join(
        self,
        *,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout: float,
        rebalance_timeout: float,
        client_id: str,
        client_host: str,
        require_known_member_id: bool,
    ) -> JoinResult | asyncio.Future[JoinResult]:
        def fail(error: ErrorCode, member: str = member_id) -> JoinResult:
            return JoinResult(error=error, member_id=member)

        if self._closed:
            return fail(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if not group_id:
            return fail(ErrorCode.INVALID_GROUP_ID)
        if not self._min_session_ms <= session_timeout * 1000 <= self._max_session_ms:
            return fail(ErrorCode.INVALID_SESSION_TIMEOUT)
        group = self._groups.get(group_id)
        if group is None:
            if member_id:
                return fail(ErrorCode.UNKNOWN_MEMBER_ID)
            group = self._groups[group_id] = Group(group_id=group_id)
        if not group.supports(protocol_type, protocols, member_id):
            return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        now = self._clock()

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
                    return self._replace_static(group, old_id, new_member(new_id))
            elif require_known_member_id:
                group.pending_members[new_id] = now + session_timeout
                self._schedule(now + session_timeout)
                return fail(ErrorCode.MEMBER_ID_REQUIRED, new_id)
            return self._add_member(group, new_member(new_id))
        if group_instance_id is None and member_id in group.pending_members:
            del group.pending_members[member_id]
            return self._add_member(group, new_member(member_id))
        error = group.fenced(member_id, group_instance_id)
        if error is not ErrorCode.NONE:
            return fail(error)
        member = group.members[member_id]
        unchanged = member.protocols == protocols
        self._update_member(member, protocols, session_timeout, rebalance_timeout)
        if len(group.members) == 1:
            member.protocol_type = group.protocol_type = protocol_type
        if group.state is _COMPLETING and unchanged:
            # The answer was lost on the way (a retried request): repeat it.
            return self._join_answer(group, member)
        if group.state is _STABLE and unchanged and member_id != group.leader_id:
            return self._join_answer(group, member)
        waiter = self._park_join(member)
        if group.state is _PREPARING:
            self._try_complete_join(group)
        else:
            self._prepare_rebalance(group)
        return waiter

    def _add_member(self, group: Group, member: Member) -> asyncio.Future[JoinResult]:
        if group.state is _PREPARING and group.initial_delay:
            group.new_member_added = True
        if not group.members:
            group.protocol_type = member.protocol_type
            group.leader_id = member.member_id
        group.members[member.member_id] = member
        if member.group_instance_id is not None:
            group.static_members[member.group_instance_id] = member.member_id
        waiter = self._park_join(member)
        if group.state is _PREPARING:
            self._try_complete_join(group)
        else:
            self._prepare_rebalance(group)
        return waiter

    def _replace_static(
        self, group: Group, old_id: str, new: Member
    ) -> JoinResult | asyncio.Future[JoinResult]:
        """KIP-345: a restarted static member takes its instance's place under a new id."""
        old = group.members.pop(old_id)
        old.answer_join(JoinResult(error=ErrorCode.FENCED_INSTANCE_ID, member_id=old_id))
        old.answer_sync((ErrorCode.FENCED_INSTANCE_ID, b""))
        new.assignment = old.assignment
        group.members[new.member_id] = new
        if len(group.members) == 1:
            group.protocol_type = new.protocol_type
        assert new.group_instance_id is not None
        group.static_members[new.group_instance_id] = new.member_id
        previous_leader = group.leader_id
        if previous_leader == old_id:
            group.leader_id = new.member_id
        if old_id in group.pending_sync:
            group.pending_sync.discard(old_id)
            group.pending_sync.add(new.member_id)
        self._schedule(new.session_deadline)
        if group.state is _STABLE and new.protocols == old.protocols:
            # Kafka answers with the old leader id so that even a replaced leader does not
            # compute an assignment a Stable group would never hand out.
            return JoinResult(
                error=ErrorCode.NONE,
                generation_id=group.generation_id,
                protocol_name=group.protocol_name,
                leader_id=previous_leader,
                member_id=new.member_id,
            )
        waiter = self._park_join(new)
        if group.state is _PREPARING:
            self._try_complete_join(group)
        else:
            self._prepare_rebalance(group)
        return waiter

    def _join_answer(self, group: Group, member: Member) -> JoinResult:
        leader = member.member_id == group.leader_id
        return JoinResult(
            error=ErrorCode.NONE,
            generation_id=group.generation_id,
            protocol_name=group.protocol_name,
            leader_id=group.leader_id,
            member_id=member.member_id,
            members=group.member_list() if leader else [],
        )

    def _update_member(
        self,
        member: Member,
        protocols: list[tuple[str, bytes]],
        session_timeout: float,
        rebalance_timeout: float,
    ) -> None:
        member.protocols = protocols
        member.session_timeout = session_timeout
        member.rebalance_timeout = rebalance_timeout
        self._touch(member)

    def _park_join(self, member: Member) -> asyncio.Future[JoinResult]:
        # A member joining again while parked abandoned its earlier request (a client-side
        # timeout); that request must not hang forever.
        member.answer_join(
            JoinResult(error=ErrorCode.REBALANCE_IN_PROGRESS, member_id=member.member_id)
        )
        waiter: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        member.join_waiter = waiter
        return waiter

    # -- rebalance ---------------------------------------------------------------------------

    def _prepare_rebalance(self, group: Group) -> None:
        now = self._clock()
        if group.state is _COMPLETING:
            for member in group.members.values():
                member.assignment = b""
                member.answer_sync((ErrorCode.REBALANCE_IN_PROGRESS, b""))
        group.pending_sync.clear()
        group.sync_deadline = None
        group.initial_delay = group.state is _EMPTY and self._initial_delay > 0
        group.new_member_added = False
        if group.initial_delay:
            group.join_deadline = now + self._initial_delay
            group.initial_delay_remaining = max(group.rebalance_timeout - self._initial_delay, 0)
        else:
            group.join_deadline = now + group.rebalance_timeout
        group.state = _PREPARING
        self._schedule(group.join_deadline)
        self._try_complete_join(group)

    def _try_complete_join(self, group: Group) -> None:
        if group.state is _PREPARING and not group.initial_delay and group.all_joined():
            self._complete_join(group, self._clock())

    def _on_join_deadline(self, group: Group, now: float) -> None:
        if group.initial_delay and group.new_member_added and group.initial_delay_remaining > 0:
            group.new_member_added = False
            delay = min(self._initial_delay, group.initial_delay_remaining)
            group.initial_delay_remaining = max(
                group.initial_delay_remaining - self._initial_delay, 0
            )
            group.join_deadline = now + delay
            self._schedule(group.join_deadline)
            return
        group.initial_delay = False
        self._complete_join(group, now)

    def _complete_join(self, group: Group, now: float) -> None:
        # Dynamic members that did not rejoin are gone; static ones keep their place (KIP-345).
        for member in list(group.members.values()):
            if member.join_waiter is None and member.group_instance_id is None:
                self._drop(group, member)
        leader = group.members.get(group.leader_id)
        if leader is None or leader.join_waiter is None:
            joined = [m for m in group.members.values() if m.join_waiter is not None]
            if not joined and group.members:
                # Only absent static members: wait for them (or their sessions) once more.
                group.join_deadline = now + group.rebalance_timeout
                self._schedule(group.join_deadline)
                return
            group.leader_id = joined[0].member_id if joined else ""
        group.generation_id += 1
        group.initial_delay = False
        if not group.members:
            group.state = _EMPTY
            group.protocol_name = ""
            return
        group.protocol_name = group.select_protocol()
        group.state = _COMPLETING
        for member in group.members.values():
            member.answer_join(self._join_answer(group, member))
            self._touch(member, now)
        group.pending_sync = set(group.members)
        group.sync_deadline = now + group.rebalance_timeout
        self._schedule(group.sync_deadline)

    def _remove_member(self, group: Group, member: Member) -> None:
        """Remove a member that left or expired, and rebalance the rest."""
        self._drop(group, member)
        if group.state in (_STABLE, _COMPLETING):
            self._prepare_rebalance(group)
        else:
            self._try_complete_join(group)

    def _drop(self, group: Group, member: Member) -> None:
        # A parked request of a removed member answers UNKNOWN_MEMBER_ID: join afresh.
        member.answer_join(JoinResult(error=ErrorCode.UNKNOWN_MEMBER_ID))
        member.answer_sync((ErrorCode.UNKNOWN_MEMBER_ID, b""))
        del group.members[member.member_id]
        if member.group_instance_id is not None:
            group.static_members.pop(member.group_instance_id, None)
        group.pending_sync.discard(member.member_id)
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), "")

    # -- SyncGroup, offsets ------------------------------------------------------------------

    def _sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        assignments: list[tuple[str, bytes]],
    ) -> SyncResult | asyncio.Future[SyncResult]:
        group, error = self._member_group(group_id, member_id, group_instance_id)
        if group is None:
            return (error, b"")
        if generation_id != group.generation_id:
            return (ErrorCode.ILLEGAL_GENERATION, b"")
        if group.state is _PREPARING:
            return (ErrorCode.REBALANCE_IN_PROGRESS, b"")
        member = group.members[member_id]
        self._touch(member)
        group.pending_sync.discard(member_id)
        if not group.pending_sync:
            group.sync_deadline = None
        if group.state is _STABLE:
            return (ErrorCode.NONE, member.assignment)
        member.answer_sync((ErrorCode.REBALANCE_IN_PROGRESS, b""))
        waiter: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        member.sync_waiter = waiter
        if member_id == group.leader_id:
            by_member = dict(assignments)
            group.state = _STABLE
            for each in group.members.values():
                each.assignment = by_member.get(each.member_id, b"")
                each.answer_sync((ErrorCode.NONE, each.assignment))
                self._touch(each)
        return waiter

    def _validate_commit(
        self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        group = self._groups.get(group_id)
        if generation_id < 0 and not member_id and group_instance_id is None:
            # Without group management (assign() consumers, tools), only while nobody's in.
            if group is not None and group.members:
                return ErrorCode.UNKNOWN_MEMBER_ID
            return ErrorCode.NONE
        if group is None:
            return ErrorCode.ILLEGAL_GENERATION
        error = group.fenced(member_id, group_instance_id)
        if error is not ErrorCode.NONE:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if group.state is _COMPLETING:
            return ErrorCode.REBALANCE_IN_PROGRESS
        self._touch(group.members[member_id])
        return ErrorCode.NONE

    # -- helpers -----------------------------------------------------------------------------

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

    def _touch(self, member: Member, now: float | None = None) -> None:
        member.session_deadline = (self._clock() if now is None else now) + member.session_timeout
        self._schedule(member.session_deadline)

    def _schedule(self, deadline: float) -> None:
        # Heartbeats only push deadlines later, so they rarely wake the loop.
        if deadline < self._sleeping_until:
            self._wakeup.set()

    def _next_deadline(self) -> float:
        deadlines = [math.inf]
        for group in self._groups.values():
            deadlines.extend(group.pending_members.values())
            deadlines.extend(
                m.session_deadline
                for m in group.members.values()
                if m.join_waiter is None and m.sync_waiter is None
            )
            if group.state is _PREPARING:
                deadlines.append(group.join_deadline)
            if group.sync_deadline is not None:
                deadlines.append(group.sync_deadline)
        return min(deadlines)
