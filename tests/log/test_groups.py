"""The consumer-group coordinator and the committed-offset store, without a network.

Time is a fake clock the tests advance, followed by ``coordinator.tick()``. Parked JoinGroup and
SyncGroup calls run as tasks; the coordinator does no I/O while deciding, so letting the loop
run the ready tasks once (``settle``) parks or answers them deterministically.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from services.log._errors import BrokerClosedError, ErrorCode
from services.log._group_state import JoinResult
from services.log._groups import GroupCoordinator
from services.log._offsets import OffsetStore

GROUP = "orders"
DELAY = 3.0  # the initial rebalance delay, in seconds
SESSION = 10.0
REBALANCE = 30.0

T = TypeVar("T")


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """The coordinator's clock."""
    return FakeClock()


@pytest.fixture
def offsets(tmp_path: Path) -> Iterator[OffsetStore]:
    """An offset store in the test's directory."""
    with OffsetStore.open(tmp_path / "offsets.journal") as store:
        yield store


@pytest.fixture
def coordinator(offsets: OffsetStore, clock: FakeClock) -> Iterator[GroupCoordinator]:
    """A coordinator with the broker's default delays on the fake clock."""
    groups = GroupCoordinator(
        offsets,
        initial_rebalance_delay_ms=int(DELAY * 1000),
        min_session_timeout_ms=1000,
        max_session_timeout_ms=60_000,
        clock=clock,
    )
    yield groups
    groups.close()


async def settle() -> None:
    """Let the tasks that are ready run until they park or finish."""
    for _ in range(3):
        await asyncio.sleep(0)


async def done(task: asyncio.Task[T]) -> T:
    """The task's result, which must be available without waiting for time to pass."""
    await settle()
    assert task.done(), "the call is still parked"
    return task.result()


def start_join(
    groups: GroupCoordinator,
    member_id: str = "",
    *,
    instance: str | None = None,
    protocols: list[tuple[str, bytes]] | None = None,
    protocol_type: str = "consumer",
    require_known: bool = False,
    group: str = GROUP,
) -> asyncio.Task[JoinResult]:
    """JoinGroup as a task (it parks until the rebalance completes)."""
    return asyncio.create_task(
        groups.join(
            group_id=group,
            member_id=member_id,
            group_instance_id=instance,
            protocol_type=protocol_type,
            protocols=protocols or [("range", b"subscription")],
            session_timeout_ms=int(SESSION * 1000),
            rebalance_timeout_ms=int(REBALANCE * 1000),
            client_id="client",
            client_host="/127.0.0.1",
            require_known_member_id=require_known,
        )
    )


def start_sync(
    groups: GroupCoordinator,
    joined: JoinResult,
    assignments: list[tuple[str, bytes]] | None = None,
    *,
    instance: str | None = None,
) -> asyncio.Task[tuple[ErrorCode, bytes]]:
    """SyncGroup as a task (followers park until the leader syncs)."""
    return asyncio.create_task(
        groups.sync(
            group_id=GROUP,
            generation_id=joined.generation_id,
            member_id=joined.member_id,
            group_instance_id=instance,
            assignments=assignments or [],
        )
    )


def heartbeat(groups: GroupCoordinator, joined: JoinResult, instance: str | None = None) -> int:
    """Heartbeat of a member with the generation it joined."""
    return groups.heartbeat(
        group_id=GROUP,
        generation_id=joined.generation_id,
        member_id=joined.member_id,
        group_instance_id=instance,
    )


async def form_group(
    groups: GroupCoordinator, clock: FakeClock, count: int, instances: list[str] | None = None
) -> list[JoinResult]:
    """``count`` members join an empty group at once and sync; the group ends Stable."""
    tasks = [start_join(groups, instance=instances[i] if instances else None) for i in range(count)]
    await settle()
    # Joiners after the first extend the initial delay by one more window.
    for _ in range(1 if count == 1 else 2):
        clock.advance(DELAY)
        groups.tick()
    joined = [await done(task) for task in tasks]
    leader = next(j for j in joined if j.leader_id == j.member_id)
    syncs = [
        start_sync(
            groups,
            j,
            [(m, m.encode()) for m, _, _ in leader.members] if j is leader else None,
            instance=instances[i] if instances else None,
        )
        for i, j in enumerate(joined)
    ]
    for j, sync in zip(joined, syncs, strict=True):
        assert await done(sync) == (ErrorCode.NONE, j.member_id.encode())
    assert groups.describe(GROUP).state == "Stable"
    return joined


# -- JoinGroup -------------------------------------------------------------------------------


async def test_member_id_required_then_join(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """JoinGroup v4 without a member id is told MEMBER_ID_REQUIRED and joins with that id."""
    first = await done(start_join(coordinator, require_known=True))
    assert first.error is ErrorCode.MEMBER_ID_REQUIRED
    assert first.member_id.startswith("client-")
    assert coordinator.describe(GROUP).members == []

    task = start_join(coordinator, first.member_id, require_known=True)
    await settle()
    clock.advance(DELAY)
    coordinator.tick()
    joined = await done(task)
    assert joined.error is ErrorCode.NONE
    assert (joined.member_id, joined.leader_id) == (first.member_id, first.member_id)
    assert joined.members == [(first.member_id, None, b"subscription")]


async def test_old_join_gets_a_generated_member_id(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """JoinGroup v0-v3 without a member id joins at once under a generated id."""
    task = start_join(coordinator)
    await settle()
    clock.advance(DELAY)
    coordinator.tick()
    joined = await done(task)
    assert joined.error is ErrorCode.NONE
    assert joined.member_id.startswith("client-")


async def test_first_generation_comes_after_the_initial_delay(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """The first join of an empty group waits the initial delay, then gets generation 1."""
    task = start_join(coordinator)
    await settle()
    clock.advance(DELAY - 0.1)
    coordinator.tick()
    await settle()
    assert not task.done()
    assert coordinator.describe(GROUP).state == "PreparingRebalance"
    clock.advance(0.1)
    coordinator.tick()
    joined = await done(task)
    assert (joined.error, joined.generation_id, joined.protocol_name) == (
        ErrorCode.NONE,
        1,
        "range",
    )
    assert coordinator.describe(GROUP).state == "CompletingRebalance"


async def test_three_members_get_one_generation_and_one_leader(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """Members joining together share generation 1; only the leader gets the member list."""
    tasks = [start_join(coordinator) for _ in range(3)]
    await settle()
    clock.advance(DELAY)
    coordinator.tick()
    await settle()
    assert not any(task.done() for task in tasks), "later joiners extend the initial delay"
    clock.advance(DELAY)
    coordinator.tick()
    joined = [await done(task) for task in tasks]
    assert {j.generation_id for j in joined} == {1}
    assert len({j.leader_id for j in joined}) == 1
    leaders = [j for j in joined if j.member_id == j.leader_id]
    assert leaders == [joined[0]]
    assert [m for m, _, _ in leaders[0].members] == [j.member_id for j in joined]
    assert joined[1].members == joined[2].members == []


async def test_initial_delay_is_bounded_by_the_rebalance_timeout(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """A steady trickle of joiners cannot hold the first rebalance past the rebalance timeout."""
    tasks = [start_join(coordinator)]
    for _ in range(int(REBALANCE / DELAY)):
        tasks.append(start_join(coordinator))
        await settle()
        assert not any(task.done() for task in tasks)
        clock.advance(DELAY)
        coordinator.tick()
    joined = [await done(task) for task in tasks]
    assert {j.generation_id for j in joined} == {1}


async def test_invalid_joins_are_refused(coordinator: GroupCoordinator, clock: FakeClock) -> None:
    """Empty group id, bad session timeout, unknown member and foreign protocols are refused."""
    no_group = await done(start_join(coordinator, group=""))
    assert no_group.error is ErrorCode.INVALID_GROUP_ID
    too_short = await coordinator.join(
        group_id=GROUP,
        member_id="",
        group_instance_id=None,
        protocol_type="consumer",
        protocols=[("range", b"")],
        session_timeout_ms=10,
        rebalance_timeout_ms=1000,
        client_id="client",
        client_host="/127.0.0.1",
        require_known_member_id=False,
    )
    assert too_short.error is ErrorCode.INVALID_SESSION_TIMEOUT
    unknown = await done(start_join(coordinator, "someone-else"))
    assert unknown.error is ErrorCode.UNKNOWN_MEMBER_ID

    await form_group(coordinator, clock, 1)
    other_type = await done(start_join(coordinator, protocol_type="connect"))
    assert other_type.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    disjoint = await done(start_join(coordinator, protocols=[("roundrobin", b"")]))
    assert disjoint.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL


async def test_protocol_with_most_votes_is_chosen(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """Each member votes for its preferred common protocol; the leader gets that metadata."""
    tasks = [
        start_join(coordinator, protocols=[("range", b"r1"), ("sticky", b"s1")]),
        start_join(coordinator, protocols=[("sticky", b"s2"), ("range", b"r2")]),
        start_join(coordinator, protocols=[("sticky", b"s3"), ("range", b"r3")]),
    ]
    await settle()
    for _ in range(2):
        clock.advance(DELAY)
        coordinator.tick()
    joined = [await done(task) for task in tasks]
    assert {j.protocol_name for j in joined} == {"sticky"}
    assert [meta for _, _, meta in joined[0].members] == [b"s1", b"s2", b"s3"]


# -- SyncGroup and heartbeats ----------------------------------------------------------------


async def test_sync_before_the_leader_waits_for_its_assignment(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """A follower's SyncGroup parks until the leader's brings the assignments."""
    tasks = [start_join(coordinator) for _ in range(2)]
    await settle()
    for _ in range(2):
        clock.advance(DELAY)
        coordinator.tick()
    leader, follower = [await done(task) for task in tasks]
    assert heartbeat(coordinator, follower) is ErrorCode.NONE  # allowed while completing

    waiting = start_sync(coordinator, follower)
    await settle()
    assert not waiting.done()
    assignments = [(leader.member_id, b"p0"), (follower.member_id, b"p1")]
    assert await done(start_sync(coordinator, leader, assignments)) == (ErrorCode.NONE, b"p0")
    assert await done(waiting) == (ErrorCode.NONE, b"p1")

    described = coordinator.describe(GROUP)
    assert (described.state, described.protocol) == ("Stable", "range")
    assert [m.assignment for m in described.members] == [b"p0", b"p1"]


async def test_sync_and_heartbeat_errors(coordinator: GroupCoordinator, clock: FakeClock) -> None:
    """Wrong generation, unknown member and a rebalance under way are reported."""
    first, second = await form_group(coordinator, clock, 2)
    stale = JoinResult(error=ErrorCode.NONE, generation_id=0, member_id=first.member_id)
    assert await done(start_sync(coordinator, stale)) == (ErrorCode.ILLEGAL_GENERATION, b"")
    assert heartbeat(coordinator, stale) is ErrorCode.ILLEGAL_GENERATION
    ghost = JoinResult(error=ErrorCode.NONE, generation_id=1, member_id="ghost")
    assert await done(start_sync(coordinator, ghost)) == (ErrorCode.UNKNOWN_MEMBER_ID, b"")
    assert heartbeat(coordinator, ghost) is ErrorCode.UNKNOWN_MEMBER_ID
    assert coordinator.leave(group_id=GROUP, member_id="ghost") is ErrorCode.UNKNOWN_MEMBER_ID

    newcomer = start_join(coordinator)
    await settle()
    assert coordinator.describe(GROUP).state == "PreparingRebalance"
    assert await done(start_sync(coordinator, second)) == (ErrorCode.REBALANCE_IN_PROGRESS, b"")
    assert heartbeat(coordinator, first) is ErrorCode.REBALANCE_IN_PROGRESS
    newcomer.cancel()


async def test_leader_that_never_syncs_restarts_the_rebalance(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """Followers waiting on a silent leader are released after the rebalance timeout."""
    tasks = [start_join(coordinator) for _ in range(2)]
    await settle()
    for _ in range(2):
        clock.advance(DELAY)
        coordinator.tick()
    leader, follower = [await done(task) for task in tasks]
    waiting = start_sync(coordinator, follower)
    await settle()
    for _ in range(int(REBALANCE / (SESSION / 2))):
        assert heartbeat(coordinator, leader) is ErrorCode.NONE  # alive, but never syncs
        clock.advance(SESSION / 2)
        coordinator.tick()
    assert await done(waiting) == (ErrorCode.REBALANCE_IN_PROGRESS, b"")
    assert heartbeat(coordinator, leader) is ErrorCode.UNKNOWN_MEMBER_ID


# -- leaving, expiring ------------------------------------------------------------------------


async def test_leave_rebalances_the_others_at_once(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """After LeaveGroup the others see REBALANCE_IN_PROGRESS and rebalance without waiting."""
    first, second = await form_group(coordinator, clock, 2)
    assert coordinator.leave(group_id=GROUP, member_id=second.member_id) is ErrorCode.NONE
    assert heartbeat(coordinator, second) is ErrorCode.UNKNOWN_MEMBER_ID
    assert heartbeat(coordinator, first) is ErrorCode.REBALANCE_IN_PROGRESS

    rejoined = await done(start_join(coordinator, first.member_id))  # no time passes
    assert (rejoined.error, rejoined.generation_id) == (ErrorCode.NONE, 2)
    assert [m for m, _, _ in rejoined.members] == [first.member_id]


async def test_leader_leaving_hands_leadership_on(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """When the leader leaves, the next member leads the next generation."""
    first, second = await form_group(coordinator, clock, 2)
    assert coordinator.leave(group_id=GROUP, member_id=first.member_id) is ErrorCode.NONE
    rejoined = await done(start_join(coordinator, second.member_id))
    assert rejoined.leader_id == second.member_id


async def test_last_member_leaving_empties_the_group(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """The last leave makes the group Empty; the next first join waits the delay again."""
    (only,) = await form_group(coordinator, clock, 1)
    assert coordinator.leave(group_id=GROUP, member_id=only.member_id) is ErrorCode.NONE
    assert coordinator.describe(GROUP).state == "Empty"

    task = start_join(coordinator)
    await settle()
    assert not task.done()
    clock.advance(DELAY)
    coordinator.tick()
    joined = await done(task)
    assert joined.generation_id > only.generation_id


async def test_silent_member_is_evicted_after_its_session(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """A member that stops heartbeating is removed after its session timeout."""
    first, second = await form_group(coordinator, clock, 2)
    for _ in range(4):
        clock.advance(SESSION / 4)
        assert heartbeat(coordinator, first) is ErrorCode.NONE
        coordinator.tick()
    assert heartbeat(coordinator, second) is ErrorCode.UNKNOWN_MEMBER_ID
    assert heartbeat(coordinator, first) is ErrorCode.REBALANCE_IN_PROGRESS
    rejoined = await done(start_join(coordinator, first.member_id))
    assert (rejoined.generation_id, len(rejoined.members)) == (2, 1)


async def test_member_missing_the_rebalance_is_dropped_at_its_timeout(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """A member that heartbeats but never rejoins is removed when the rebalance times out."""
    first, second = await form_group(coordinator, clock, 2)
    newcomer = start_join(coordinator)
    rejoin = start_join(coordinator, first.member_id)
    await settle()
    for _ in range(int(REBALANCE / (SESSION / 2))):
        assert heartbeat(coordinator, second) is ErrorCode.REBALANCE_IN_PROGRESS
        clock.advance(SESSION / 2)
        coordinator.tick()
    joined = [await done(newcomer), await done(rejoin)]
    assert {j.generation_id for j in joined} == {2}
    assert heartbeat(coordinator, second) is ErrorCode.UNKNOWN_MEMBER_ID


# -- static membership -----------------------------------------------------------------------


async def test_static_member_rejoins_without_rebalance_and_fences_its_old_id(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """A restarted static member keeps generation and assignment; its old id is fenced."""
    first, second = await form_group(coordinator, clock, 2, instances=["a", "b"])
    restarted = await done(start_join(coordinator, instance="b"))
    assert restarted.error is ErrorCode.NONE
    assert restarted.member_id != second.member_id
    assert (restarted.generation_id, restarted.leader_id) == (1, first.member_id)
    assert coordinator.describe(GROUP).state == "Stable"

    synced = await done(start_sync(coordinator, restarted, instance="b"))
    assert synced == (ErrorCode.NONE, second.member_id.encode())
    assert heartbeat(coordinator, first, "a") is ErrorCode.NONE
    assert heartbeat(coordinator, second, "b") is ErrorCode.FENCED_INSTANCE_ID
    stale_sync = await done(start_sync(coordinator, second, instance="b"))
    assert stale_sync == (ErrorCode.FENCED_INSTANCE_ID, b"")
    stale_commit = coordinator.commit_offsets(
        group_id=GROUP,
        generation_id=1,
        member_id=second.member_id,
        group_instance_id="b",
        offsets={("t", 0): (5, "", -1)},
    )
    assert stale_commit is ErrorCode.FENCED_INSTANCE_ID


async def test_static_member_with_new_protocols_rebalances(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """A static member restarting with a changed subscription triggers a rebalance."""
    first, _ = await form_group(coordinator, clock, 2, instances=["a", "b"])
    task = start_join(coordinator, instance="b", protocols=[("range", b"more topics")])
    await settle()
    assert not task.done()
    assert heartbeat(coordinator, first, "a") is ErrorCode.REBALANCE_IN_PROGRESS
    leader = await done(start_join(coordinator, first.member_id, instance="a"))
    assert leader.generation_id == 2
    assert (await done(task)).generation_id == 2


async def test_static_member_leave_removes_it(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """LeaveGroup by instance id removes the static member and rebalances."""
    first, second = await form_group(coordinator, clock, 2, instances=["a", "b"])
    left = coordinator.leave(group_id=GROUP, member_id="", group_instance_id="b")
    assert left is ErrorCode.NONE
    assert heartbeat(coordinator, second, "b") is ErrorCode.UNKNOWN_MEMBER_ID
    assert heartbeat(coordinator, first, "a") is ErrorCode.REBALANCE_IN_PROGRESS


# -- offsets ---------------------------------------------------------------------------------


async def test_commit_and_fetch_offsets(coordinator: GroupCoordinator, clock: FakeClock) -> None:
    """Committed offsets come back with their metadata; unknown partitions answer -1."""
    simple = coordinator.commit_offsets(
        group_id="tools", generation_id=-1, member_id="", offsets={("t", 0): (42, "note", -1)}
    )
    assert simple is ErrorCode.NONE
    fetched = coordinator.fetch_offsets(group_id="tools", partitions=[("t", 0), ("t", 1)])
    assert fetched == {("t", 0): (42, "note", -1), ("t", 1): (-1, "", -1)}
    assert coordinator.fetch_offsets(group_id="tools", partitions=None) == {
        ("t", 0): (42, "note", -1)
    }
    assert coordinator.fetch_offsets(group_id="nobody", partitions=None) == {}

    (member,) = await form_group(coordinator, clock, 1)
    ok = coordinator.commit_offsets(
        group_id=GROUP, generation_id=1, member_id=member.member_id, offsets={("t", 3): (7, "", -1)}
    )
    assert ok is ErrorCode.NONE
    assert coordinator.fetch_offsets(group_id=GROUP, partitions=[("t", 3)]) == {
        ("t", 3): (7, "", -1)
    }
    cases = [
        (-1, "", ErrorCode.UNKNOWN_MEMBER_ID),  # no simple commits while the group has members
        (1, "ghost", ErrorCode.UNKNOWN_MEMBER_ID),
        (5, member.member_id, ErrorCode.ILLEGAL_GENERATION),
    ]
    for generation, member_id, expected in cases:
        error = coordinator.commit_offsets(
            group_id=GROUP,
            generation_id=generation,
            member_id=member_id,
            offsets={("t", 3): (9, "", -1)},
        )
        assert error is expected
    unknown_group = coordinator.commit_offsets(
        group_id="missing", generation_id=3, member_id="m", offsets={("t", 0): (1, "", -1)}
    )
    assert unknown_group is ErrorCode.ILLEGAL_GENERATION
    assert coordinator.fetch_offsets(group_id=GROUP, partitions=[("t", 3)]) == {
        ("t", 3): (7, "", -1)
    }


async def test_commits_during_a_rebalance(coordinator: GroupCoordinator, clock: FakeClock) -> None:
    """Members may commit while the rebalance is prepared, not between join and sync."""
    (member,) = await form_group(coordinator, clock, 1)
    newcomer = start_join(coordinator)
    await settle()

    def commit(joined: JoinResult) -> ErrorCode:
        return coordinator.commit_offsets(
            group_id=GROUP,
            generation_id=joined.generation_id,
            member_id=joined.member_id,
            offsets={("t", 0): (1, "", -1)},
        )

    assert commit(member) is ErrorCode.NONE  # consumers commit before revoking partitions
    rejoined = await done(start_join(coordinator, member.member_id))
    assert commit(rejoined) is ErrorCode.REBALANCE_IN_PROGRESS
    assert (await done(newcomer)).generation_id == rejoined.generation_id == 2


async def test_list_describe_and_delete_groups(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """Groups with only offsets are listed as Empty; only empty groups can be deleted."""
    coordinator.commit_offsets(
        group_id="tools", generation_id=-1, member_id="", offsets={("t", 0): (1, "", -1)}
    )
    (member,) = await form_group(coordinator, clock, 1)
    assert coordinator.list_groups() == [(GROUP, "consumer", "Stable"), ("tools", "", "Empty")]
    assert coordinator.describe("tools").state == "Empty"
    assert coordinator.describe("nobody").state == "Dead"
    described = coordinator.describe(GROUP)
    assert [(m.member_id, m.client_id, m.metadata) for m in described.members] == [
        (member.member_id, "client", b"subscription")
    ]

    assert coordinator.delete(GROUP) is ErrorCode.NON_EMPTY_GROUP
    assert coordinator.delete("tools") is ErrorCode.NONE
    assert coordinator.delete("tools") is ErrorCode.GROUP_ID_NOT_FOUND
    assert coordinator.list_groups() == [(GROUP, "consumer", "Stable")]


async def test_close_answers_parked_calls(coordinator: GroupCoordinator) -> None:
    """Closing the coordinator answers parked joins with COORDINATOR_NOT_AVAILABLE."""
    task = start_join(coordinator)
    await settle()
    coordinator.close()
    coordinator.close()
    assert (await done(task)).error is ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert (await done(start_join(coordinator))).error is ErrorCode.COORDINATOR_NOT_AVAILABLE


async def test_run_completes_rebalances_in_real_time(offsets: OffsetStore) -> None:
    """``run()`` acts on deadlines by itself and returns once the coordinator is closed."""
    groups = GroupCoordinator(
        offsets,
        initial_rebalance_delay_ms=20,
        min_session_timeout_ms=1000,
        max_session_timeout_ms=60_000,
    )
    async with asyncio.TaskGroup() as tasks:
        loop = tasks.create_task(groups.run())
        started = time.monotonic()
        async with asyncio.timeout(5):
            joined = await start_join(groups)
        assert joined.generation_id == 1
        assert time.monotonic() - started >= 0.02
        groups.close()
    assert loop.done()


# -- the offset store ------------------------------------------------------------------------


def test_offsets_survive_reopen_and_a_torn_tail(tmp_path: Path) -> None:
    """Offsets committed before a crash are replayed; a half-written entry is dropped."""
    path = tmp_path / "offsets.journal"
    with OffsetStore.open(path) as store:
        store.commit("g", {("t", 0): (10, "a", -1), ("t", 1): (20, "", -1)})
        store.commit("g", {("t", 0): (11, "b", -1)})
    with path.open("ab") as journal:
        journal.write(b'0badc0de {"op":"commit","group":"g","offs')
    with OffsetStore.open(path) as store:
        assert store.fetch("g") == {("t", 0): (11, "b", -1), ("t", 1): (20, "", -1)}
        store.commit("h", {("u", 0): (1, "", -1)})
    with OffsetStore.open(path) as store:
        assert store.groups() == {"g", "h"}
        store.delete_group("g")
    with OffsetStore.open(path) as store:
        assert store.groups() == {"h"}
        assert store.fetch("g", [("t", 0)]) == {("t", 0): (-1, "", -1)}


def test_staged_offsets_apply_only_when_the_transaction_commits(tmp_path: Path) -> None:
    """Transactional offsets are invisible until commit, durable meanwhile, dropped on abort."""
    path = tmp_path / "offsets.journal"
    with OffsetStore.open(path) as store:
        store.commit("g", {("t", 0): (5, "", -1)})
        store.stage(7, "g", {("t", 0): (9, "txn", -1)})
        store.stage(8, "g", {("t", 1): (3, "aborted", -1)})
        assert store.fetch("g") == {("t", 0): (5, "", -1)}
        assert store.staged("g") == {("t", 0), ("t", 1)}
    with OffsetStore.open(path) as store:
        assert store.fetch("g") == {("t", 0): (5, "", -1)}
        store.complete(8, commit=False)
        store.complete(7, commit=True)
        store.complete(7, commit=True)  # a retried EndTxn changes nothing
        assert store.fetch("g") == {("t", 0): (9, "txn", -1)}
        assert store.staged("g") == set()
    with OffsetStore.open(path) as store:
        assert store.fetch("g", [("t", 0), ("t", 1)]) == {
            ("t", 0): (9, "txn", -1),
            ("t", 1): (-1, "", -1),
        }


def test_journal_is_compacted_when_it_grows(tmp_path: Path) -> None:
    """A journal of many commits is rewritten as a snapshot of the current offsets."""
    path = tmp_path / "offsets.journal"
    with OffsetStore.open(path, compact_after=10_000) as store:
        for offset in range(50):
            store.commit("g", {("t", 0): (offset, "", -1)})
        store.stage(1, "g", {("t", 1): (3, "", -1)})
    grown = path.stat().st_size
    with OffsetStore.open(path, compact_after=10) as store:
        assert path.stat().st_size < grown / 10
        assert store.fetch("g") == {("t", 0): (49, "", -1)}
        store.complete(1, commit=True)
        assert store.fetch("g") == {("t", 0): (49, "", -1), ("t", 1): (3, "", -1)}


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    """A closed store raises BrokerClosedError; closing again is harmless."""
    store = OffsetStore.open(tmp_path / "offsets.journal")
    store.close()
    store.close()
    with pytest.raises(BrokerClosedError):
        store.commit("g", {("t", 0): (1, "", -1)})
    with pytest.raises(BrokerClosedError):
        store.fetch("g")


async def test_unused_member_id_stops_blocking_the_rebalance(
    coordinator: GroupCoordinator, clock: FakeClock
) -> None:
    """An id handed out with MEMBER_ID_REQUIRED and never used expires after the session."""
    first, second = await form_group(coordinator, clock, 2)
    coordinator.leave(group_id=GROUP, member_id=second.member_id)
    required = await done(start_join(coordinator, require_known=True))
    assert required.error is ErrorCode.MEMBER_ID_REQUIRED
    rejoin = start_join(coordinator, first.member_id)
    await settle()
    assert not rejoin.done(), "the rebalance waits for the client told to come back"
    clock.advance(SESSION)
    coordinator.tick()
    assert (await done(rejoin)).generation_id == 2
