"""The dispatcher as a real process: exactly-once leases across ``kill -9``, fencing, dead
letters, poison records, cancellation. The test plays the pools (``ScriptedPool``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from services.workers import RetryPolicy
from services.workers._records import Command, JobRequest
from services.workers._topics import ASSIGNMENTS, COMMANDS, DEAD_LETTER, NORMAL
from tests.log._poll import eventually
from tests.workers._processes import (
    append,
    dispatcher,
    executions,
    read_topic,
    request_jobs,
)
from tests.workers._scripted_pool import ScriptedPool


def job(n: int, *, attempts: int = 3, backoff: float = 0.1, lane: str = "normal") -> JobRequest:
    return JobRequest(execution_id=f"x{n:05d}", job_id="noop", lane=lane,  # type: ignore[arg-type]
                      payload={"n": n},
                      retry=RetryPolicy(max_attempts=attempts, backoff=backoff))


async def test_kill_9_of_the_dispatcher_leases_every_job_exactly_once(
        workers_log: str, tmp_path: Path) -> None:
    """Three ``kill -9`` of the dispatcher mid-stream: every job succeeds once, each on its
    first lease — no assignment an aborted transaction made ever reaches a pool."""
    total = 300
    proc = dispatcher(workers_log, tmp_path).start()
    try:
        pool = ScriptedPool(workers_log, "scripted-eos", capacity=8, urgent=0)
        async with pool.running():
            stop = asyncio.Event()
            worker = asyncio.create_task(pool.work(stop))
            await request_jobs(workers_log, [job(n) for n in range(total)])
            for fraction in (0.2, 0.45, 0.7):
                await eventually(lambda f=fraction: len(pool.leases()) >= total * f,  # type: ignore[misc]
                                 timeout=90,
                                 what=lambda f=fraction: f"{f:.0%} leased\n{proc.log()}")
                proc.kill()
                proc.start()

            async def all_done() -> bool:
                found = await executions(workers_log)
                return sum(e["status"] == "succeeded" for e in found.values()) == total

            await eventually(all_done, timeout=120, interval=0.5,
                             what=lambda: f"every job succeeded\n{proc.log()}")
            stop.set()
            await worker
        found = await executions(workers_log)
        mine = {k: v for k, v in found.items() if k.startswith("x")}
        assert len(mine) == total
        assert {(e["attempt"], e["token"], e["rejected_results"]) for e in mine.values()} == {
            (1, 1, 0)}
        leases = [json.loads(r.value) for r in await read_topic(workers_log, ASSIGNMENTS)]
        granted = [x["execution_id"] for x in leases
                   if x["type"] == "lease" and x["pool"] == pool.pool_id]
        assert sorted(granted) == sorted(mine)  # one committed lease per execution
    finally:
        proc.stop()


async def test_an_expired_lease_is_revoked_and_the_late_result_rejected(
        workers_log: str, tmp_path: Path) -> None:
    """A pool that stops heartbeating loses its lease (revocation on its partition); the job
    is leased again with a higher token; the first pool's late result is refused."""
    with dispatcher(workers_log, tmp_path) as proc:
        stalled = ScriptedPool(workers_log, "stalled", capacity=1, urgent=0, lease_seconds=1.0)
        healthy = ScriptedPool(workers_log, "healthy", capacity=1, urgent=0, lease_seconds=1.0)
        async with stalled.running(), healthy.running():
            await request_jobs(workers_log, [job(1, backoff=0.0)])

            async def stalled_gets_the_lease() -> bool:
                # It heartbeats (it is alive) until the lease arrives, then goes silent.
                if not stalled.leases():
                    await stalled.heartbeat()
                return bool(stalled.leases())

            await eventually(stalled_gets_the_lease, timeout=60, interval=0.2,
                             what=lambda: f"the first lease\n{proc.log()}")
            # Only the healthy pool heartbeats from now on.
            stop = asyncio.Event()

            async def beat() -> None:
                while not stop.is_set():
                    await healthy.heartbeat()
                    await asyncio.sleep(0.2)

            beating = asyncio.create_task(beat())
            await eventually(lambda: bool(healthy.leases()), timeout=30,
                             what=lambda: f"the second lease\n{proc.log()}")
            assert stalled.revocations()[0]["token"] == 1
            assert stalled.revocations()[0]["reason"] == "lease expired"
            assert healthy.leases()[0]["token"] == 2
            assert healthy.leases()[0]["attempt"] == 2
            await stalled.finish("x00001", 1, result="late")

            async def rejected() -> bool:
                return (await executions(workers_log))["x00001"]["rejected_results"] == 1

            await eventually(rejected, timeout=30, what="the late result refused")
            await healthy.finish("x00001", 2, result="on time")

            async def succeeded() -> bool:
                return (await executions(workers_log))["x00001"]["status"] == "succeeded"

            await eventually(succeeded, timeout=30, what="the success")
            stop.set()
            await beating
        final = (await executions(workers_log))["x00001"]
        assert final["result"] == "on time"
        assert final["pool"] == "healthy"
        assert [e["error"] for e in final["errors"]] == ["lease expired (pool stalled)"]


async def test_failed_attempts_are_retried_then_dead_lettered(
        workers_log: str, tmp_path: Path) -> None:
    """Each failure is retried after its backoff; the last one sends the execution to the
    dead-letter topic with the error in its headers."""
    with dispatcher(workers_log, tmp_path) as proc:
        pool = ScriptedPool(workers_log, "failing", capacity=2, urgent=0)
        async with pool.running():
            await pool.heartbeat()
            await request_jobs(workers_log, [job(7, attempts=3, backoff=0.1)])
            for attempt in (1, 2, 3):
                await eventually(lambda a=attempt: len(pool.leases()) >= a,  # type: ignore[misc]
                                 timeout=30, what=lambda a=attempt: f"attempt {a}\n{proc.log()}")
                lease = pool.leases()[attempt - 1]
                assert (lease["attempt"], lease["token"]) == (attempt, attempt)
                await pool.finish("x00007", lease["token"], ok=False, error=f"boom {attempt}")

            async def dead() -> bool:
                return any(r.key == b"x00007" for r in await read_topic(workers_log, DEAD_LETTER))

            await eventually(dead, timeout=30, what=lambda: f"a dead letter\n{proc.log()}")
        [letter] = [r for r in await read_topic(workers_log, DEAD_LETTER) if r.key == b"x00007"]
        headers = dict(letter.headers)
        assert headers["x-error-message"] == b"boom 3"
        assert headers["x-attempts"] == b"3"
        assert json.loads(letter.value)["status"] == "dead_lettered"
        final = (await executions(workers_log))["x00007"]
        assert final["status"] == "dead_lettered"
        assert [e["error"] for e in final["errors"]] == ["boom 1", "boom 2", "boom 3"]


async def test_a_poison_record_is_dead_lettered_and_dispatch_goes_on(
        workers_log: str, tmp_path: Path) -> None:
    """Garbage on a lane topic goes to the dead-letter topic with the error and its origin;
    the next request is leased as usual."""
    with dispatcher(workers_log, tmp_path) as proc:
        pool = ScriptedPool(workers_log, "poisoned", capacity=2, urgent=0)
        async with pool.running():
            await pool.heartbeat()
            await append(workers_log, NORMAL, [(b"poison", b"{not json"),
                                               (b"half", b'{"execution_id": "h"}')])
            await request_jobs(workers_log, [job(3)])
            await eventually(lambda: bool(pool.leases()), timeout=60,
                             what=lambda: f"the good request leased\n{proc.log()}")
        letters = {r.key: dict(r.headers) for r in await read_topic(workers_log, DEAD_LETTER)}
        assert letters[b"poison"]["x-error-type"] == b"JSONDecodeError"
        assert letters[b"poison"]["x-original-topic"] == NORMAL.encode()
        assert letters[b"half"]["x-error-type"] == b"KeyError"
        assert pool.leases()[0]["execution_id"] == "x00003"
        assert proc.process is not None
        assert proc.process.poll() is None  # the dispatcher did not die on the poison


async def test_cancel_revokes_a_running_lease_and_drops_a_queued_one(
        workers_log: str, tmp_path: Path) -> None:
    """A cancel command ends a queued execution before it is leased and revokes the lease
    of a running one; both end ``cancelled``."""
    with dispatcher(workers_log, tmp_path) as proc:
        pool = ScriptedPool(workers_log, "cancelling", capacity=1, urgent=0)
        async with pool.running():
            await pool.heartbeat()
            await request_jobs(workers_log, [job(1), job(2)])
            await eventually(lambda: bool(pool.leases()), timeout=60,
                             what=lambda: f"the first lease\n{proc.log()}")
            commands = [Command(type="cancel", execution_id=e, reason="operator")
                        for e in ("x00002", "x00001")]
            await append(workers_log, COMMANDS,
                         [(c.execution_id.encode(), json.dumps(c.to_json()).encode())
                          for c in commands])
            await eventually(lambda: bool(pool.revocations()), timeout=30,
                             what=lambda: f"the revocation\n{proc.log()}")
            assert pool.revocations()[0]["reason"] == "cancelled: operator"

            async def cancelled() -> bool:
                found = await executions(workers_log)
                return all(found[e]["status"] == "cancelled" for e in ("x00001", "x00002"))

            await eventually(cancelled, timeout=30, what="both cancelled")
            assert [x["execution_id"] for x in pool.leases()] == ["x00001"]
