"""The state of one consumer group: its members, its generation and the values answered.

Kept apart from the coordinator so the rules that need no clock or event loop (which protocol
the group speaks, who is fenced, which members the leader assigns) read on their own. The
transitions between states are in ``_rebalance.py``, request validation in ``_groups.py``.
"""

from __future__ import annotations

import asyncio
import enum
import math
import struct
from collections import Counter
from dataclasses import dataclass, field

from services.log._errors import ErrorCode

CONSUMER_PROTOCOL_TYPE = "consumer"


class GroupState(enum.Enum):
    """Kafka's group states; the values are the names DescribeGroups and ListGroups report."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, kw_only=True, slots=True)
class JoinResult:
    """The answer to JoinGroup.

    ``members`` is only filled for the leader: ``(member_id, group_instance_id, metadata)``
    with each member's metadata for the chosen protocol, so the leader can compute assignments.
    On an error the generation is -1 and ``member_id`` is the id the client should use next
    (the generated one for MEMBER_ID_REQUIRED, "" when it must join afresh).
    """

    error: ErrorCode
    generation_id: int = -1
    protocol_name: str = ""
    leader_id: str = ""
    member_id: str = ""
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True, slots=True)
class MemberDescription:
    """One member as DescribeGroups shows it (metadata and assignment only when Stable)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupDescription:
    """The answer to DescribeGroups for one group; an unknown group is ``Dead``."""

    error: ErrorCode
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: list[MemberDescription]


SyncResult = tuple[ErrorCode, bytes]


@dataclass(kw_only=True, slots=True, eq=False)
class Member:
    """A member of a group; mutable, owned by its group."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    session_timeout: float
    rebalance_timeout: float
    session_deadline: float
    assignment: bytes = b""
    # Set while the member's JoinGroup (SyncGroup) is parked until the rebalance (the leader's
    # assignment) completes. A member with a parked request is not expected to heartbeat.
    join_waiter: asyncio.Future[JoinResult] | None = None
    sync_waiter: asyncio.Future[SyncResult] | None = None

    def metadata(self, protocol: str) -> bytes:
        """The member's metadata for ``protocol`` (b"" if it does not support it)."""
        return next((meta for name, meta in self.protocols if name == protocol), b"")

    def answer_join(self, result: JoinResult) -> None:
        """Hand a parked JoinGroup its answer."""
        waiter, self.join_waiter = self.join_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def answer_sync(self, result: SyncResult) -> None:
        """Hand a parked SyncGroup its answer."""
        waiter, self.sync_waiter = self.sync_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(result)


@dataclass(kw_only=True, slots=True, eq=False)
class Group:
    """A consumer group's members and rebalance bookkeeping; mutable, owned by the coordinator."""

    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str = ""
    protocol_name: str = ""
    leader_id: str = ""
    # Insertion-ordered: the leader falls back to the oldest remaining member.
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    # Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to come back by.
    pending_members: dict[str, float] = field(default_factory=dict)
    # When the PreparingRebalance phase ends even if members are missing.
    join_deadline: float = 0.0
    # KIP-134: while the first joiners of an empty group gather, the rebalance waits out
    # windows of the initial delay; a window in which someone joined is followed by another.
    initial_delay: bool = False
    new_member_added: bool = False
    initial_delay_remaining: float = 0.0
    # Members that got the JoinGroup answer but have not synced, and the deadline to do so.
    pending_sync: set[str] = field(default_factory=set)
    sync_deadline: float | None = None

    @property
    def rebalance_timeout(self) -> float:
        """The longest rebalance timeout of the members: how long a rebalance may wait."""
        return max((m.rebalance_timeout for m in self.members.values()), default=0.0)

    def supports(
        self, protocol_type: str, protocols: list[tuple[str, bytes]], member_id: str
    ) -> bool:
        """Whether a member with these protocols may join (or rejoin, as ``member_id``)."""
        others = [m for m in self.members.values() if m.member_id != member_id]
        if not protocol_type or not protocols:
            return False
        if not others:
            return True
        if protocol_type != self.protocol_type:
            return False
        common = _common_protocols(others)
        return any(name in common for name, _ in protocols)

    def select_protocol(self) -> str:
        """Kafka's choice: each member votes for its most preferred protocol all members
        support; the most votes win, ties going to the leader's preference."""
        common = _common_protocols(list(self.members.values()))
        votes = Counter(
            next(name for name, _ in member.protocols if name in common)
            for member in self.members.values()
        )
        leader = self.members.get(self.leader_id) or next(iter(self.members.values()))
        preference = [name for name, _ in leader.protocols]
        return max(votes, key=lambda name: (votes[name], -preference.index(name)))

    def fenced(self, member_id: str, group_instance_id: str | None) -> ErrorCode:
        """Kafka's validation of the member a request comes from.

        With a ``group_instance_id`` the instance must be known and held by ``member_id``
        (another id means this one was replaced: FENCED_INSTANCE_ID); without one, the member
        id must be in the group.
        """
        if group_instance_id is not None:
            current = self.static_members.get(group_instance_id)
            if current is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            return ErrorCode.NONE if current == member_id else ErrorCode.FENCED_INSTANCE_ID
        return ErrorCode.NONE if member_id in self.members else ErrorCode.UNKNOWN_MEMBER_ID

    def all_joined(self) -> bool:
        """Whether every member has a parked JoinGroup and no handed-out id is outstanding."""
        return not self.pending_members and all(
            m.join_waiter is not None for m in self.members.values()
        )

    def next_deadline(self) -> float:
        """The earliest time at which something of this group may expire (inf if none)."""
        deadlines = [*self.pending_members.values()]
        deadlines.extend(
            m.session_deadline
            for m in self.members.values()
            if m.join_waiter is None and m.sync_waiter is None
        )
        if self.state is GroupState.PREPARING_REBALANCE:
            deadlines.append(self.join_deadline)
        if self.sync_deadline is not None:
            deadlines.append(self.sync_deadline)
        return min(deadlines, default=math.inf)

    def member_list(self) -> list[tuple[str, str | None, bytes]]:
        """What the leader receives: every member with its metadata for the chosen protocol."""
        return [
            (m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
            for m in self.members.values()
        ]

    def subscribed_topics(self) -> set[str] | None:
        """The topics a consumer group's members subscribe to (Kafka's
        ``computeSubscribedTopics``); None when unknown: not a ``consumer`` group, no protocol
        chosen yet, or a subscription that does not parse."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE or not self.protocol_name:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            subscribed = _subscription_topics(member.metadata(self.protocol_name))
            if subscribed is None:
                return None
            topics |= subscribed
        return topics

    def describe(self) -> GroupDescription:
        """The group as DescribeGroups shows it; like Kafka, metadata only when Stable."""
        stable = self.state is GroupState.STABLE
        return GroupDescription(
            error=ErrorCode.NONE,
            group_id=self.group_id,
            state=self.state.value,
            protocol_type=self.protocol_type,
            protocol=self.protocol_name if stable else "",
            members=[
                MemberDescription(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    metadata=m.metadata(self.protocol_name) if stable else b"",
                    assignment=m.assignment if stable else b"",
                )
                for m in self.members.values()
            ],
        )


def _subscription_topics(metadata: bytes) -> set[str] | None:
    """The topics of a consumer protocol subscription; every version starts like v0:
    int16 version, then an array of int16-length strings."""
    try:
        (count,) = struct.unpack_from(">i", metadata, 2)
        pos, topics = 6, set()
        for _ in range(count):
            (length,) = struct.unpack_from(">h", metadata, pos)
            pos += 2
            if length < 0 or pos + length > len(metadata):
                return None
            topics.add(metadata[pos : pos + length].decode())
            pos += length
    except (struct.error, UnicodeDecodeError):
        return None
    return topics


def _common_protocols(members: list[Member]) -> set[str]:
    common = {name for name, _ in members[0].protocols} if members else set()
    for member in members[1:]:
        common &= {name for name, _ in member.protocols}
    return common
