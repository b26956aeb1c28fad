"""The workers API on :8091 over a real log, dispatcher and worker pool: jobs, triggers
(validation, idempotency, lanes, admission), executions, tasks, cancel, seed, SSE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from services.kernel import Settings, ensure_topics
from services.kernel.testing import serve_app
from services.log.testing import BrokerProcess
from services.workers._topics import URGENT, topic_configs
from services.workers.api import create_workers_app
from services.workers.examples import EXAMPLES
from tests.log._poll import eventually
from tests.workers._processes import Process, dispatcher, pools, read_topic
from tests.workers.jobs_for_tests import ALL, SPEC

PREFIX = "/api/v1/workers"
NORMAL_LIMIT = 5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Process, Process]]:
    """A log, the dispatcher and one pool of 2 credits (1 reserved for urgent work)."""
    workdir = tmp_path_factory.mktemp("workers-api")
    with BrokerProcess(workdir / "log") as broker:
        log = broker.bootstrap_servers
        asyncio.run(ensure_topics(log, topic_configs()))
        with dispatcher(log, workdir) as proc, \
                pools(log, workdir, jobs=f"{SPEC},services.workers.examples:EXAMPLES",
                      capacity=2, urgent_percentage=50) as pool:
            yield log, proc, pool


@pytest.fixture
async def api(stack: tuple[str, Process, Process]) -> AsyncIterator[httpx.AsyncClient]:
    log, _, _ = stack
    app = create_workers_app(Settings(service_name="workers", kafka_bootstrap_servers=log),
                             [*ALL, *EXAMPLES], lane_limits={"normal": NORMAL_LIMIT},
                             mirror=False)
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url,
                                                           timeout=40) as client:
        async def ready() -> bool:
            return (await client.get("/health/ready")).status_code == 200

        await eventually(ready, timeout=60, what="the API ready")
        yield client


async def trigger(api: httpx.AsyncClient, job: str, payload: Any = None,
                  **kwargs: Any) -> httpx.Response:
    return await api.post(f"{PREFIX}/jobs/{job}/trigger", json=payload, **kwargs)


async def finished(api: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    response = await api.get(f"{PREFIX}/executions/{execution_id}",
                             params={"wait": 30, "until": "terminal"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_jobs_are_listed_with_their_payload_schemas(api: httpx.AsyncClient) -> None:
    """GET /jobs: every registered job with its lane, retry policy and payload JSON Schema."""
    jobs = {j["id"]: j for j in (await api.get(f"{PREFIX}/jobs")).json()}
    assert {"create-user-settings", "generate-report", "send-notification", "sleepy"} <= set(jobs)
    settings = jobs["create-user-settings"]
    assert settings["lane"] == "normal"
    assert settings["retry"]["max_attempts"] == 5
    assert "userId" in settings["payload_schema"]["properties"]
    assert jobs["send-notification"]["lane"] == "urgent"


async def test_bad_triggers_are_problems_naming_the_field(api: httpx.AsyncClient) -> None:
    """An invalid payload is 422 problem+json with the field at fault; an unknown job 404;
    a body that is not JSON 422 — and nothing reaches a lane."""
    bad = await trigger(api, "create-user-settings", {"userId": ""})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    [error] = bad.json()["errors"]
    assert error["field"] == "body.userId"
    assert error["pointer"] == "#/body/userId"
    missing = await trigger(api, "sleepy", {})
    assert missing.json()["errors"][0]["field"] == "body.seconds"
    unknown = await trigger(api, "no-such-job", {})
    assert unknown.status_code == 404
    assert "create-user-settings" in unknown.json()["detail"]
    garbage = await api.post(f"{PREFIX}/jobs/quick/trigger", content=b"{nope",
                             headers={"content-type": "application/json"})
    assert garbage.status_code == 422
    lane = await api.post(f"{PREFIX}/jobs/quick/trigger", params={"lane": "fast"}, json={})
    assert lane.status_code == 422


async def test_a_trigger_runs_and_reads_back(api: httpx.AsyncClient) -> None:
    """202 with the execution id and Location; the execution succeeds on the pool and reads
    back whole; the list filters and pages."""
    receipts = [await trigger(api, "quick", {"n": n}) for n in range(3)]
    for receipt in receipts:
        assert receipt.status_code == 202
        assert receipt.headers["location"] == receipt.json()["location"]
    ids = [r.json()["execution_id"] for r in receipts]
    for execution_id in ids:
        done = await finished(api, execution_id)
        assert done["status"] == "succeeded"
        assert done["result"]["lane"] == "normal"
        assert done["attempt"] == 1
    first = (await api.get(f"{PREFIX}/executions",
                           params={"job_id": "quick", "status": "succeeded", "limit": 2})).json()
    assert first["total"] >= 3
    assert len(first["items"]) == 2
    rest = (await api.get(f"{PREFIX}/executions", params={
        "job_id": "quick", "status": "succeeded", "limit": 2,
        "cursor": first["next_cursor"]})).json()
    seen = {e["execution_id"] for e in first["items"] + rest["items"]}
    assert len(seen) == len(first["items"]) + len(rest["items"])
    assert set(ids) <= {e["execution_id"] for e in (await api.get(
        f"{PREFIX}/executions", params={"job_id": "quick", "limit": 500})).json()["items"]}
    unknown = await api.get(f"{PREFIX}/executions/nope")
    assert unknown.status_code == 404
    again = await api.post(f"{PREFIX}/executions/{ids[0]}/cancel")
    assert again.status_code == 409


async def test_an_idempotency_key_names_one_execution(
        api: httpx.AsyncClient, stack: tuple[str, Process, Process]) -> None:
    """The same Idempotency-Key twice: one execution id, run once; ?lane=urgent sends the
    request to the urgent lane."""
    headers = {"Idempotency-Key": "welcome-42"}
    first = await trigger(api, "quick", {}, headers=headers, params={"lane": "urgent"})
    done = await finished(api, first.json()["execution_id"])
    second = await trigger(api, "quick", {}, headers=headers, params={"lane": "urgent"})
    assert second.status_code == 202
    assert second.json()["execution_id"] == first.json()["execution_id"]
    assert second.json()["status"] == "succeeded"
    assert done["lane"] == "urgent"
    assert done["version"] == (await finished(api, first.json()["execution_id"]))["version"]
    log, _, _ = stack
    on_urgent = [r for r in await read_topic(log, URGENT)
                 if r.key == first.json()["execution_id"].encode()]
    assert len(on_urgent) == 1


async def test_tasks_show_leases_and_free_credits(api: httpx.AsyncClient) -> None:
    """GET /tasks: the pool, the lease it holds with its progress, and its free credits;
    POST /preempt takes the lease away and the execution runs again."""
    receipt = await trigger(api, "sleepy", {"seconds": 3})
    execution_id = receipt.json()["execution_id"]
    await api.get(f"{PREFIX}/executions/{execution_id}", params={"wait": 20, "until": "running"})
    leased: dict[str, Any] = {}

    async def shows_progress() -> bool:
        nonlocal leased
        pools_ = (await api.get(f"{PREFIX}/tasks")).json()["pools"]
        live = [p for p in pools_ if p["alive"]]
        for pool in live:
            for lease in pool["leases"]:
                if lease["execution_id"] == execution_id and lease["progress"]:
                    leased = pool
                    return True
        return False

    await eventually(shows_progress, timeout=20, what="a lease with progress")
    assert leased["capacity"] == 2
    assert leased["urgent_reserved"] == 1
    assert leased["free"] == {"normal": 0, "urgent": 1}
    # A stuck-looking attempt can be preempted: its lease goes, the attempt counts as failed
    # and the execution runs again.
    preempted = await api.post(f"{PREFIX}/executions/{execution_id}/preempt",
                               params={"reason": "looks stuck"})
    assert preempted.status_code == 202
    done = await finished(api, execution_id)
    assert done["status"] == "succeeded"
    assert done["attempt"] == 2
    assert done["errors"][0]["error"] == "preempted: looks stuck"
    again = await api.post(f"{PREFIX}/executions/{execution_id}/preempt")
    assert again.status_code == 409


async def test_execution_changes_stream_and_resume(api: httpx.AsyncClient) -> None:
    """The SSE stream sends each change; reconnecting with Last-Event-ID resumes after it."""
    events: list[tuple[str, dict[str, Any]]] = []

    async def listen(headers: dict[str, str], until: str, target: list[tuple[str, Any]]
                     ) -> None:
        async with api.stream("GET", f"{PREFIX}/executions/stream", headers=headers) as stream:
            event_id = ""
            async for line in stream.aiter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:])
                    target.append((event_id, data))
                    if data["execution_id"] == until and data["status"] == "succeeded":
                        return

    receipt = await trigger(api, "quick", {})
    execution_id = receipt.json()["execution_id"]
    # Last-Event-ID -1: every change the view holds, then live ones.
    await asyncio.wait_for(listen({"Last-Event-ID": "-1"}, execution_id, events), timeout=30)
    mine = [(i, d) for i, d in events if d["execution_id"] == execution_id]
    first_id = mine[0][0]
    resumed: list[tuple[str, Any]] = []
    await asyncio.wait_for(listen({"Last-Event-ID": first_id}, execution_id, resumed),
                           timeout=30)
    assert all(int(i) > int(first_id) for i, _ in resumed)
    assert resumed[-1][1]["status"] == "succeeded"


async def test_seed_triggers_the_demo_jobs(api: httpx.AsyncClient) -> None:
    """POST /seed triggers each demo job (here without the sagas API, so create-user-settings
    fails its attempts — the other two succeed)."""
    seeded = await api.post(f"{PREFIX}/seed", json={"count": 1})
    assert seeded.status_code == 202
    by_job = {e["job_id"]: e for e in seeded.json()["executions"]}
    assert set(by_job) == {"create-user-settings", "generate-report", "send-notification"}
    assert by_job["send-notification"]["lane"] == "urgent"
    done = await finished(api, by_job["send-notification"]["execution_id"])
    assert done["result"]["delivered"] is True
    settings = by_job["create-user-settings"]["execution_id"]
    await api.post(f"{PREFIX}/executions/{settings}/cancel")  # it cannot reach the sagas API
    assert (await finished(api, settings))["status"] == "cancelled"


async def test_a_full_lane_answers_429_while_the_other_accepts(api: httpx.AsyncClient) -> None:
    """With the normal credit busy, normal work queues up to the lane's limit; the next
    trigger is 429 with Retry-After, while an urgent trigger is accepted and runs."""
    busy = await trigger(api, "sleepy", {"seconds": 30})
    await api.get(f"{PREFIX}/executions/{busy.json()['execution_id']}",
                  params={"wait": 20, "until": "running"})
    queued = [await trigger(api, "quick", {}) for _ in range(NORMAL_LIMIT)]
    assert all(r.status_code == 202 for r in queued)

    async def full() -> bool:
        tasks = (await api.get(f"{PREFIX}/tasks")).json()
        return bool(tasks["queued"]["normal"] >= NORMAL_LIMIT)

    await eventually(full, timeout=30, what="the normal backlog at its limit")
    refused = await trigger(api, "quick", {})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"
    assert refused.json()["lane"] == "normal"
    urgent = await trigger(api, "quick-urgent", {})
    assert urgent.status_code == 202
    assert (await finished(api, urgent.json()["execution_id"]))["status"] == "succeeded"
    for receipt in [busy, *queued]:  # leave the pool free
        await api.post(f"{PREFIX}/executions/{receipt.json()['execution_id']}/cancel")
    cancelled = await finished(api, busy.json()["execution_id"])
    assert cancelled["status"] == "cancelled"


def test_no_bad_request_took_a_process_down(stack: tuple[str, Process, Process]) -> None:
    """The dispatcher and the pool are still running after every request above."""
    _, proc, pool = stack
    assert proc.process is not None
    assert proc.process.poll() is None
    assert pool.process is not None
    assert pool.process.poll() is None
