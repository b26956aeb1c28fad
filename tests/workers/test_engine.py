"""The dispatcher's decisions (``DispatchEngine``), one input at a time, without I/O."""

from __future__ import annotations

from typing import Any

from services.workers import RetryPolicy
from services.workers._engine import DispatchEngine
from services.workers._records import (
    Bye,
    Command,
    Finished,
    Heartbeat,
    HeldLease,
    JobRequest,
    Started,
)

T0 = 1_700_000_000_000


def request(n: int, *, lane: str = "normal", attempts: int = 3, backoff: float = 1.0,
            **extra: Any) -> JobRequest:
    return JobRequest(execution_id=f"e{n}", job_id="job", lane=lane,  # type: ignore[arg-type]
                      payload={"n": n},
                      retry=RetryPolicy(max_attempts=attempts, backoff=backoff), **extra)


def beat(capacity: int = 4, urgent: int = 1, lease: float = 3.0,
         leases: tuple[HeldLease, ...] = ()) -> Heartbeat:
    return Heartbeat(capacity=capacity, urgent_reserved=urgent, lease_seconds=lease,
                     leases=leases)


def engine_with_pool(pool: str = "p1", **kwargs: Any) -> DispatchEngine:
    engine = DispatchEngine()
    engine.report(pool, [beat(**kwargs)], now=T0)
    engine.drain()
    return engine


def test_a_request_is_leased_to_a_pool_with_a_fencing_token() -> None:
    """A queued execution goes to a live pool at once, with token 1 and attempt 1."""
    engine = engine_with_pool()
    engine.request(request(1), now=T0 + 10)
    out = engine.drain()
    [assignment] = out.assignments
    assert assignment.lease.pool == "p1"
    assert assignment.lease.token == 1
    assert assignment.attempt == 1
    assert assignment.payload == {"n": 1}
    assert assignment.lease.expires_at == T0 + 10 + 3000
    assert out.executions["e1"].status == "leased"


def test_no_pool_means_the_execution_waits_queued() -> None:
    """Without a pool nothing is leased; the first heartbeat gets the work going."""
    engine = DispatchEngine()
    engine.request(request(1), now=T0)
    assert engine.drain().assignments == []
    assert engine.executions["e1"].status == "queued"
    engine.report("p1", [beat()], now=T0 + 5)
    assert [a.execution_id for a in engine.drain().assignments] == ["e1"]


def test_normal_work_never_takes_the_urgent_share() -> None:
    """A pool of 4 with 1 reserved holds at most 3 normal leases; urgent work takes the 4th."""
    engine = engine_with_pool(capacity=4, urgent=1)
    for n in range(10):
        engine.request(request(n), now=T0 + n)
    assert len(engine.drain().assignments) == 3
    assert engine.load_of("p1") == (3, 0)
    engine.request(request(100, lane="urgent"), now=T0 + 20)
    [urgent] = engine.drain().assignments
    assert urgent.execution_id == "e100"
    assert urgent.lane == "urgent"
    engine.request(request(101, lane="urgent"), now=T0 + 21)
    assert engine.drain().assignments == []  # the pool is full now
    assert engine.load_of("p1") == (3, 1)


def test_urgent_work_is_leased_before_normal_work() -> None:
    """When a credit frees, a waiting urgent execution gets it before the normal backlog."""
    engine = engine_with_pool(capacity=2, urgent=1)
    for n in range(5):
        engine.request(request(n), now=T0 + n)
    engine.request(request(50, lane="urgent"), now=T0 + 6)
    engine.request(request(51, lane="urgent"), now=T0 + 7)
    engine.drain()
    engine.report("p1", [Finished(execution_id="e0", token=1, ok=True)], now=T0 + 8)
    [next_one] = engine.drain().assignments
    assert next_one.execution_id == "e51"


def test_an_idle_pool_gets_work_while_another_is_busy() -> None:
    """Work goes to the pool with free credits: no pool is handed more than it can run."""
    engine = engine_with_pool("busy", capacity=2, urgent=0)
    for n in range(2):
        engine.request(request(n), now=T0 + n)
    engine.request(request(2), now=T0 + 3)
    out = engine.drain()
    assert [a.lease.pool for a in out.assignments] == ["busy", "busy"]
    engine.report("idle", [beat(capacity=2, urgent=0)], now=T0 + 4)
    [late] = engine.drain().assignments
    assert late.execution_id == "e2"
    assert late.lease.pool == "idle"


def test_success_is_recorded_and_frees_the_credit() -> None:
    """started → running; finished ok → succeeded with the result; the credit returns."""
    engine = engine_with_pool(capacity=1, urgent=0)
    engine.request(request(1), now=T0)
    engine.request(request(2), now=T0)
    engine.drain()
    engine.report("p1", [Started(execution_id="e1", token=1)], now=T0 + 1)
    assert engine.executions["e1"].status == "running"
    engine.report("p1", [Finished(execution_id="e1", token=1, ok=True, result={"x": 1})],
                  now=T0 + 2)
    out = engine.drain()
    assert engine.executions["e1"].status == "succeeded"
    assert engine.executions["e1"].result == {"x": 1}
    assert [a.execution_id for a in out.assignments] == ["e2"]


def test_a_late_result_with_an_old_token_is_rejected() -> None:
    """After a lease expires and the execution is leased again, the old holder's result is
    refused: exactly one success is recorded."""
    engine = engine_with_pool("a", capacity=1, urgent=0, lease=1.0)
    engine.request(request(1, attempts=3), now=T0)
    engine.drain()
    engine.report("b", [beat(capacity=1, urgent=0, lease=1.0)], now=T0 + 900)
    engine.tick(now=T0 + 1001)  # a's lease expired; backoff 1 s
    out = engine.drain()
    assert [(r.pool, r.token) for r in out.revocations] == [("a", 1)]
    assert engine.executions["e1"].status == "queued"
    engine.report("b", [beat(capacity=1, urgent=0, lease=1.0)], now=T0 + 1900)
    engine.tick(now=T0 + 2100)
    [again] = engine.drain().assignments
    assert again.lease.pool == "b"
    assert again.lease.token == 2
    assert again.attempt == 2
    engine.report("a", [Finished(execution_id="e1", token=1, ok=True, result="late")],
                  now=T0 + 2200)
    out = engine.drain()
    assert out.rejected
    assert engine.executions["e1"].rejected_results == 1
    assert engine.executions["e1"].status == "leased"
    engine.report("b", [Finished(execution_id="e1", token=2, ok=True, result="b")],
                  now=T0 + 2300)
    assert engine.executions["e1"].status == "succeeded"
    assert engine.executions["e1"].result == "b"


def test_heartbeats_extend_the_lease_and_record_progress() -> None:
    """A heartbeat naming the lease and its token moves the expiry and stores progress."""
    engine = engine_with_pool(lease=2.0)
    engine.request(request(1), now=T0)
    engine.drain()
    engine.report("p1", [beat(lease=2.0, leases=(HeldLease(execution_id="e1", token=1,
                                                             progress=0.5),))], now=T0 + 1500)
    execution = engine.executions["e1"]
    assert execution.lease_expires_at == T0 + 3500
    assert execution.progress == 0.5
    engine.tick(now=T0 + 3000)
    assert engine.executions["e1"].status == "leased"  # not expired: extended


def test_a_heartbeat_without_progress_flags_the_execution_stuck() -> None:
    """No progress for ``stuck_after`` seconds → stuck (the lease itself is still extended)."""
    engine = engine_with_pool(lease=10.0)
    engine.request(request(1, stuck_after=2.0), now=T0)
    held = (HeldLease(execution_id="e1", token=1, progress=1),)
    engine.report("p1", [beat(lease=10.0, leases=held)], now=T0 + 500)
    engine.report("p1", [beat(lease=10.0, leases=held)], now=T0 + 1500)
    assert not engine.executions["e1"].stuck
    engine.report("p1", [beat(lease=10.0, leases=held)], now=T0 + 2600)
    assert engine.executions["e1"].stuck
    engine.report("p1", [beat(lease=10.0, leases=(HeldLease(execution_id="e1", token=1,
                                                             progress=2),))], now=T0 + 2700)
    assert not engine.executions["e1"].stuck


def test_a_stuck_execution_is_preempted_when_the_job_asks_for_it() -> None:
    """preempt_stuck: the lease is revoked and the attempt counts as failed (retried)."""
    engine = engine_with_pool(lease=10.0)
    engine.request(request(1, stuck_after=1.0, preempt_stuck=True), now=T0)
    engine.drain()
    engine.tick(now=T0 + 1500)
    out = engine.drain()
    assert [r.reason for r in out.revocations] == ["stuck: no progress"]
    execution = engine.executions["e1"]
    assert execution.status == "queued"
    assert "stuck" in (execution.error or "")


def test_failures_are_retried_with_backoff_then_dead_lettered() -> None:
    """A retryable failure requeues after the backoff; the last attempt dead-letters."""
    engine = engine_with_pool(capacity=1, urgent=0)
    engine.request(request(1, attempts=2), now=T0)
    engine.report("p1", [Finished(execution_id="e1", token=1, ok=False, error="boom")],
                  now=T0 + 10)
    execution = engine.executions["e1"]
    assert execution.status == "queued"
    assert execution.available_at == T0 + 10 + 1000
    engine.drain()
    engine.tick(now=T0 + 500)
    assert engine.drain().assignments == []  # still backing off
    engine.tick(now=T0 + 1010)
    [second] = engine.drain().assignments
    assert second.attempt == 2
    assert second.lease.token == 2
    engine.report("p1", [Finished(execution_id="e1", token=2, ok=False, error="boom again")],
                  now=T0 + 1100)
    out = engine.drain()
    assert [e.execution_id for e in out.dead_letters] == ["e1"]
    execution = engine.executions["e1"]
    assert execution.status == "dead_lettered"
    assert execution.error == "boom again"
    assert [e.error for e in execution.errors] == ["boom", "boom again"]


def test_a_non_retryable_failure_fails_at_once() -> None:
    """retryable=False → failed, no further attempt, no dead letter."""
    engine = engine_with_pool()
    engine.request(request(1, attempts=5), now=T0)
    engine.report("p1", [Finished(execution_id="e1", token=1, ok=False, error="bad",
                                  retryable=False)], now=T0 + 1)
    out = engine.drain()
    assert engine.executions["e1"].status == "failed"
    assert out.dead_letters == []


def test_cancel_of_a_queued_and_of_a_running_execution() -> None:
    """Cancel: a queued execution is never leased; a running one's lease is revoked."""
    engine = engine_with_pool(capacity=1, urgent=0)
    engine.request(request(1), now=T0)
    engine.request(request(2), now=T0)
    engine.drain()
    engine.command(Command(type="cancel", execution_id="e2", reason="no"), now=T0 + 1)
    engine.command(Command(type="cancel", execution_id="e1", reason="stop"), now=T0 + 2)
    out = engine.drain()
    assert [(r.execution_id, r.reason) for r in out.revocations] == [("e1", "cancelled: stop")]
    assert out.assignments == []  # e2 was cancelled while queued
    assert engine.executions["e1"].status == "cancelled"
    assert engine.executions["e2"].status == "cancelled"
    assert engine.load_of("p1") == (0, 0)
    engine.report("p1", [Finished(execution_id="e1", token=1, ok=True)], now=T0 + 3)
    assert engine.executions["e1"].status == "cancelled"  # the late result is rejected


def test_a_repeated_request_is_applied_once() -> None:
    """The same execution id (idempotency key) does not queue a second execution."""
    engine = engine_with_pool()
    engine.request(request(1), now=T0)
    engine.report("p1", [Finished(execution_id="e1", token=1, ok=True)], now=T0 + 1)
    engine.drain()
    engine.request(request(1), now=T0 + 2)
    assert not engine.drain()
    assert engine.executions["e1"].status == "succeeded"


def test_bye_returns_held_leases_at_once_and_retires_the_pool() -> None:
    """A stopping pool's leases are requeued without waiting for expiry or backoff."""
    engine = engine_with_pool("a", capacity=1, urgent=0)
    engine.request(request(1), now=T0)
    engine.report("a", [Bye()], now=T0 + 10)
    assert engine.executions["e1"].status == "queued"
    assert not engine.pools["a"].alive
    engine.drain()
    engine.report("b", [beat(capacity=1, urgent=0)], now=T0 + 11)
    [again] = engine.drain().assignments
    assert again.lease.pool == "b"
    assert again.attempt == 2


def test_a_silent_pool_gets_no_more_work() -> None:
    """No heartbeat for a lease length → the pool is gone; its leases expire."""
    engine = engine_with_pool("a", capacity=2, urgent=0, lease=1.0)
    engine.request(request(1), now=T0)
    engine.tick(now=T0 + 1200)
    assert not engine.pools["a"].alive
    assert engine.executions["e1"].status == "queued"
    engine.drain()
    engine.request(request(2), now=T0 + 3000)
    assert engine.drain().assignments == []


def test_rebuilding_from_the_tables_gives_the_same_decisions() -> None:
    """load() of the persisted executions and pools continues exactly where the engine was."""
    engine = engine_with_pool(capacity=2, urgent=1)
    for n in range(4):
        engine.request(request(n), now=T0 + n)
    engine.request(request(9, lane="urgent"), now=T0 + 5)
    restored = DispatchEngine()
    restored.load(engine.executions.values(), engine.pools.values())
    assert restored.load_of("p1") == engine.load_of("p1") == (1, 1)
    for e in (engine, restored):
        e.drain()
        e.report("p1", [Finished(execution_id="e0", token=1, ok=True)], now=T0 + 10)
    assert ([a.execution_id for a in engine.drain().assignments]
            == [a.execution_id for a in restored.drain().assignments] == ["e1"])


def test_a_pool_that_let_a_lease_expire_gets_no_work_until_it_heartbeats() -> None:
    """The retry of an expired lease does not go back to the silent pool, even before the
    pool's own timeout; its next heartbeat makes it eligible again."""
    engine = engine_with_pool("dead", capacity=1, urgent=0, lease=1.0)
    engine.request(request(1, backoff=0.0), now=T0 + 500)  # after the pool's last heartbeat
    engine.report("live", [beat(capacity=1, urgent=0, lease=1.0)], now=T0 + 1000)
    engine.drain()
    engine.tick(now=T0 + 1600)  # the lease expired; the pool was seen 1.6 s ago
    engine.report("live", [beat(capacity=1, urgent=0, lease=1.0)], now=T0 + 1700)
    out = engine.drain()
    assert not engine.pools["dead"].alive
    assert [a.lease.pool for a in out.assignments] == ["live"]
    engine.report("dead", [beat(capacity=1, urgent=0, lease=1.0)], now=T0 + 1800)
    assert engine.pools["dead"].alive
