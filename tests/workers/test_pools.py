"""Real dispatcher, real worker-pool processes: what users of Celery or BullMQ lose sleep over
— a worker killed mid-job, a worker paused past its lease, urgent work behind a backlog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.kernel import Settings
from services.workers._topics import DEAD_LETTER, EXECUTIONS_CHANGELOG, NORMAL
from services.workers._trigger import JobClient
from tests.log._poll import eventually
from tests.workers._processes import (
    Process,
    append,
    dispatcher,
    executions,
    pools,
    read_topic,
)
from tests.workers.jobs_for_tests import ALL, SPEC


def client(bootstrap: str) -> JobClient:
    return JobClient(ALL, Settings(service_name="test", kafka_bootstrap_servers=bootstrap))


async def execution(bootstrap: str, execution_id: str) -> dict[str, Any]:
    return (await executions(bootstrap)).get(execution_id, {})


async def wait_status(bootstrap: str, execution_id: str, status: str,
                      *processes: Process, timeout: float = 60) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal found
        found = await execution(bootstrap, execution_id)
        return found.get("status") == status

    await eventually(reached, timeout=timeout, interval=0.1,
                     what=lambda: f"{execution_id} {status} (now {found.get('status')})\n"
                     + "\n".join(f"--- {p.name}\n{p.log()}" for p in processes))
    return found


def owner(pool_id: str, *candidates: Process) -> Process:
    """The process hosting ``pool_id`` (``<host>-<pid>-<index>``)."""
    pid = int(pool_id.rsplit("-", 2)[1])
    return next(p for p in candidates if p.pid == pid)


async def successes(bootstrap: str, execution_id: str) -> int:
    """How many times the changelog shows the execution *becoming* succeeded."""
    count, previous = 0, None
    for record in await read_topic(bootstrap, EXECUTIONS_CHANGELOG):
        if json.loads(record.key) != execution_id:
            continue
        status = json.loads(record.value)["status"]
        count += status == "succeeded" and previous != "succeeded"
        previous = status
    return count


async def test_a_pool_killed_mid_job_loses_nothing(workers_log: str, tmp_path: Path) -> None:
    """``kill -9`` of the pool running a job: its lease expires, the job runs again on the
    other pool and completes — exactly one success recorded."""
    settings = {"jobs": SPEC, "capacity": 1, "urgent_percentage": 0, "heartbeat": 0.3}
    with dispatcher(workers_log, tmp_path) as proc, \
            pools(workers_log, tmp_path, "a", **settings) as a, \
            pools(workers_log, tmp_path, "b", **settings) as b:
        async with client(workers_log) as jobs:
            receipt = await jobs.trigger("sleepy", {"seconds": 2.0})
        running = await wait_status(workers_log, receipt.execution_id, "running", proc, a, b)
        victim = owner(running["pool"], a, b)
        survivor = b if victim is a else a
        victim.kill()
        done = await wait_status(workers_log, receipt.execution_id, "succeeded", proc, survivor)
        assert done["attempt"] == 2, done["errors"]
        assert done["token"] == 2
        assert owner(done["pool"], a, b) is survivor
        assert done["result"]["pool"] == done["pool"]
        assert done["errors"][0]["error"] == f"lease expired (pool {running['pool']})"
        assert done["rejected_results"] == 0
        assert await successes(workers_log, receipt.execution_id) == 1


async def test_a_paused_pool_resumes_and_its_late_result_is_rejected(
        workers_log: str, tmp_path: Path) -> None:
    """``SIGSTOP`` past the lease: the other pool completes the job; when the paused pool
    resumes and reports, its result is refused by the fencing token."""
    settings = {"jobs": SPEC, "capacity": 1, "urgent_percentage": 0, "heartbeat": 0.3}
    with dispatcher(workers_log, tmp_path) as proc, \
            pools(workers_log, tmp_path, "a", **settings) as a, \
            pools(workers_log, tmp_path, "b", **settings) as b:
        async with client(workers_log) as jobs:
            receipt = await jobs.trigger("napping", {"seconds": 2.0})
        running = await wait_status(workers_log, receipt.execution_id, "running", proc, a, b)
        paused = owner(running["pool"], a, b)
        other = b if paused is a else a
        paused.pause()
        try:
            done = await wait_status(workers_log, receipt.execution_id, "succeeded", proc, other)
            assert owner(done["pool"], a, b) is other
        finally:
            paused.resume()

        async def refused() -> bool:
            return (await execution(workers_log, receipt.execution_id))["rejected_results"] == 1

        await eventually(refused, timeout=30, what=lambda: f"the late result\n{paused.log()}")
        final = await execution(workers_log, receipt.execution_id)
        assert final["status"] == "succeeded"
        assert final["result"]["pool"] == done["pool"]
        assert final["token"] == 2
        assert await successes(workers_log, receipt.execution_id) == 1


async def test_urgent_jobs_pass_a_backlog_of_5000_normal_jobs(
        workers_log: str, tmp_path: Path) -> None:
    """With 5,000 normal jobs queued, urgent jobs run on the reserved share at once: each
    completes while almost the whole backlog still waits."""
    with dispatcher(workers_log, tmp_path) as proc, \
            pools(workers_log, tmp_path, jobs=SPEC, capacity=4, urgent_percentage=25,
                  heartbeat=0.5) as pool:
        async with client(workers_log) as jobs:
            backlog = await jobs.trigger_many([("sleepy", {"seconds": 0.5})] * 5000)

            async def ingested() -> bool:
                found = await executions(workers_log)
                return sum(e["lane"] == "normal" for e in found.values()) == 5000

            await eventually(ingested, timeout=90, interval=0.5,
                             what=lambda: f"the backlog queued\n{proc.log()}")
            urgent = []
            for _ in range(5):
                receipt = await jobs.trigger("quick-urgent")
                urgent.append(receipt.execution_id)
                await wait_status(workers_log, receipt.execution_id, "succeeded", proc, pool)
        found = await executions(workers_log)
        normal = [found[r.execution_id] for r in backlog]
        finished_normal = [e for e in normal if e["status"] != "queued"]
        assert len(finished_normal) < 200  # the backlog is still there …
        for execution_id in urgent:  # … and every urgent job is done, on the reserved credit
            assert found[execution_id]["status"] == "succeeded"
            assert found[execution_id]["result"]["lane"] == "urgent"
        # credits: never more than capacity - reserved normal leases at once
        assert sum(e["status"] in ("leased", "running") for e in normal) <= 3


async def test_retries_then_dead_letter_and_poison_records(
        workers_log: str, tmp_path: Path) -> None:
    """A job that keeps raising is retried, then dead-lettered with its last error; a poison
    record on a lane is dead-lettered too, and the pool keeps working."""
    with dispatcher(workers_log, tmp_path) as proc, \
            pools(workers_log, tmp_path, jobs=SPEC, capacity=2, urgent_percentage=0) as pool:
        async with client(workers_log) as jobs:
            failing = await jobs.trigger("broken")
            await append(workers_log, NORMAL, [(b"poison", b"\x00\xff not json")])
            fine = await jobs.trigger("quick")
        await wait_status(workers_log, fine.execution_id, "succeeded", proc, pool)
        dead = await wait_status(workers_log, failing.execution_id, "dead_lettered", proc, pool)
        assert [e["error"] for e in dead["errors"]] == [
            "RuntimeError: attempt 1 broke", "RuntimeError: attempt 2 broke"]
        letters = {r.key: r for r in await read_topic(workers_log, DEAD_LETTER)}
        assert dict(letters[failing.execution_id.encode()].headers)["x-error-message"] == (
            b"RuntimeError: attempt 2 broke")
        assert dict(letters[b"poison"].headers)["x-original-topic"] == NORMAL.encode()
        assert pool.process is not None
        assert pool.process.poll() is None


async def test_a_bad_payload_fails_without_retries(workers_log: str, tmp_path: Path) -> None:
    """A request whose payload the job's model rejects (sent around the client's validation)
    fails at once, naming the field."""
    from services.workers._records import JobRequest
    from tests.workers._processes import request_jobs
    from tests.workers.jobs_for_tests import sleepy_job

    with dispatcher(workers_log, tmp_path) as proc, \
            pools(workers_log, tmp_path, jobs=SPEC, capacity=1, urgent_percentage=0) as pool:
        request = JobRequest.for_job(sleepy_job, {"seconds": "soon"})
        await request_jobs(workers_log, [request])
        failed = await wait_status(workers_log, request.execution_id, "failed", proc, pool)
        assert "seconds" in failed["error"]
        assert failed["attempt"] == 1
        assert failed["result"]["errors"][0]["field"] == "seconds"
