"""The transitions of a consumer group through Kafka's rebalance protocol.

``GroupCoordinator`` validates requests and finds the group; the :class:`Rebalancer` then moves
the group between states the way Kafka's ``GroupCoordinator`` does::

    Empty ──join──▶ PreparingRebalance ──all rejoined / timeout──▶ CompletingRebalance
      ▲                ▲        │                                        │ leader syncs
      └─ last member ──┘        └──────── join, leave, expiry ◀──── Stable ◀┘

Deadlines are read from the injectable clock and reported through ``schedule`` so the
coordinator's loop wakes in time; :meth:`Rebalancer.expire` acts on those that are due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from services.log._errors import ErrorCode
from services.log._group_state import Group, GroupState, JoinResult, Member, SyncResult

_EMPTY, _PREPARING, _COMPLETING, _STABLE = (
    GroupState.EMPTY,
    GroupState.PREPARING_REBALANCE,
    GroupState.COMPLETING_REBALANCE,
    GroupState.STABLE,
)


class Rebalancer:
    """Moves groups through their states; every time is in seconds of ``clock``."""

    def __init__(
        self,
        *,
        initial_delay: float,
        clock: Callable[[], float],
        schedule: Callable[[float], None],
    ) -> None:
        self._initial_delay = initial_delay
        self._clock = clock
        self._schedule = schedule

    # -- JoinGroup ---------------------------------------------------------------------------

    def add(self, group: Group, member: Member) -> asyncio.Future[JoinResult]:
        """A new member joins: it waits for the rebalance this starts (or is under way)."""
        if group.state is _PREPARING and group.initial_delay:
            group.new_member_added = True
        if not group.members:
            group.protocol_type = member.protocol_type
            group.leader_id = member.member_id
        group.members[member.member_id] = member
        if member.group_instance_id is not None:
            group.static_members[member.group_instance_id] = member.member_id
        return self._park_and_rebalance(group, member)

    def rejoin(
        self, group: Group, member: Member, protocols: list[tuple[str, bytes]]
    ) -> JoinResult | asyncio.Future[JoinResult]:
        """A known member joins again; unless nothing changed, the group rebalances."""
        unchanged = member.protocols == protocols
        member.protocols = protocols
        self.touch(member)
        if unchanged and (
            group.state is _COMPLETING
            or (group.state is _STABLE and member.member_id != group.leader_id)
        ):
            # A retried JoinGroup whose answer was lost, or a follower checking in: no news.
            return self.join_answer(group, member)
        return self._park_and_rebalance(group, member)

    def replace_static(
        self, group: Group, old_id: str, new: Member
    ) -> JoinResult | asyncio.Future[JoinResult]:
        """KIP-345: a restarted static member takes its instance's place under a new id.

        The old id is fenced. In a Stable group with unchanged protocols nothing rebalances:
        the new member gets the current generation and, on sync, the old assignment.
        """
        old = group.members.pop(old_id)
        old.answer_join(JoinResult(error=ErrorCode.FENCED_INSTANCE_ID, member_id=old_id))
        old.answer_sync((ErrorCode.FENCED_INSTANCE_ID, b""))
        new.assignment = old.assignment
        group.members[new.member_id] = new
        assert new.group_instance_id is not None  # only static members are replaced
        group.static_members[new.group_instance_id] = new.member_id
        if len(group.members) == 1:
            group.protocol_type = new.protocol_type
        previous_leader = group.leader_id
        if previous_leader == old_id:
            group.leader_id = new.member_id
        if old_id in group.pending_sync:
            group.pending_sync.discard(old_id)
            group.pending_sync.add(new.member_id)
        self._schedule(new.session_deadline)
        if group.state is _STABLE and new.protocols == old.protocols:
            # Kafka answers with the old leader id so that even a replaced leader does not
            # compute an assignment that a Stable group would never hand out.
            return JoinResult(
                error=ErrorCode.NONE,
                generation_id=group.generation_id,
                protocol_name=group.protocol_name,
                leader_id=previous_leader,
                member_id=new.member_id,
            )
        return self._park_and_rebalance(group, new)

    def join_answer(self, group: Group, member: Member) -> JoinResult:
        """The member's JoinGroup answer for the current generation."""
        leader = member.member_id == group.leader_id
        return JoinResult(
            error=ErrorCode.NONE,
            generation_id=group.generation_id,
            protocol_name=group.protocol_name,
            leader_id=group.leader_id,
            member_id=member.member_id,
            members=group.member_list() if leader else [],
        )

    def _park_and_rebalance(self, group: Group, member: Member) -> asyncio.Future[JoinResult]:
        # A member joining again while parked abandoned its earlier request (a client-side
        # timeout); that request must not hang forever.
        member.answer_join(
            JoinResult(error=ErrorCode.REBALANCE_IN_PROGRESS, member_id=member.member_id)
        )
        waiter: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        member.join_waiter = waiter
        if group.state is _PREPARING:
            self.try_complete(group)
        else:
            self.prepare(group)
        return waiter

    # -- SyncGroup ---------------------------------------------------------------------------

    def sync(
        self, group: Group, member: Member, assignments: list[tuple[str, bytes]]
    ) -> SyncResult | asyncio.Future[SyncResult]:
        """A validated member of the current generation syncs; the leader's sync completes."""
        if group.state is _PREPARING:
            return (ErrorCode.REBALANCE_IN_PROGRESS, b"")
        self.touch(member)
        group.pending_sync.discard(member.member_id)
        if not group.pending_sync:
            group.sync_deadline = None
        if group.state is _STABLE:
            return (ErrorCode.NONE, member.assignment)
        member.answer_sync((ErrorCode.REBALANCE_IN_PROGRESS, b""))  # an abandoned retry
        waiter: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        member.sync_waiter = waiter
        if member.member_id == group.leader_id:
            by_member = dict(assignments)
            group.state = _STABLE
            for each in group.members.values():
                each.assignment = by_member.get(each.member_id, b"")
                each.answer_sync((ErrorCode.NONE, each.assignment))
                self.touch(each)
        return waiter

    # -- the rebalance -----------------------------------------------------------------------

    def prepare(self, group: Group) -> None:
        """Start a rebalance: members learn of it from heartbeats and rejoin."""
        now = self._clock()
        if group.state is _COMPLETING:
            for member in group.members.values():
                member.assignment = b""
                member.answer_sync((ErrorCode.REBALANCE_IN_PROGRESS, b""))
        group.pending_sync.clear()
        group.sync_deadline = None
        # KIP-134: the first joiners of an empty group gather for the initial delay.
        group.initial_delay = group.state is _EMPTY and self._initial_delay > 0
        group.new_member_added = False
        if group.initial_delay:
            group.join_deadline = now + self._initial_delay
            group.initial_delay_remaining = max(group.rebalance_timeout - self._initial_delay, 0)
        else:
            group.join_deadline = now + group.rebalance_timeout
        group.state = _PREPARING
        self._schedule(group.join_deadline)
        self.try_complete(group)

    def try_complete(self, group: Group) -> None:
        """Complete the rebalance if every member has rejoined (never during initial delay)."""
        if group.state is _PREPARING and not group.initial_delay and group.all_joined():
            self._complete_join(group, self._clock())

    def remove(self, group: Group, member: Member) -> None:
        """Remove a member that left or expired, and rebalance the others at once."""
        self._drop(group, member)
        if group.state in (_STABLE, _COMPLETING):
            self.prepare(group)
        else:
            self.try_complete(group)

    def expire(self, group: Group, now: float) -> None:
        """Act on the group's deadlines that are due at ``now``."""
        for pending_id, deadline in list(group.pending_members.items()):
            if deadline <= now:
                del group.pending_members[pending_id]
                self.try_complete(group)
        for member in list(group.members.values()):
            # Parked members are not expected to heartbeat; the rebalance timeout bounds them.
            parked = member.join_waiter is not None or member.sync_waiter is not None
            current = group.members.get(member.member_id) is member
            if current and not parked and member.session_deadline <= now:
                self.remove(group, member)
        if group.state is _PREPARING and group.join_deadline <= now:
            self._on_join_deadline(group, now)
        if (
            group.state in (_COMPLETING, _STABLE)
            and group.sync_deadline is not None
            and group.sync_deadline <= now
        ):
            # Some member (maybe the leader) never synced: drop those that did not, start over.
            for missing in list(group.pending_sync):
                if missing in group.members:
                    self._drop(group, group.members[missing])
            self.prepare(group)

    def touch(self, member: Member, now: float | None = None) -> None:
        """Refresh the member's session."""
        member.session_deadline = (self._clock() if now is None else now) + member.session_timeout
        self._schedule(member.session_deadline)

    def _on_join_deadline(self, group: Group, now: float) -> None:
        if group.initial_delay and group.new_member_added and group.initial_delay_remaining > 0:
            # Someone joined during this window: wait one more, within the rebalance timeout.
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
            member.answer_join(self.join_answer(group, member))
            self.touch(member, now)
        group.pending_sync = set(group.members)
        group.sync_deadline = now + group.rebalance_timeout
        self._schedule(group.sync_deadline)

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
