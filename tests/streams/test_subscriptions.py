"""Subscriptions (protocol sections 6 and 7): webhook and pull-wake delivery on the real server."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.kernel import Settings
from services.kernel.testing import RunningServer, serve_app
from services.streams._subscription_errors import WebhookUrlRejectedError
from services.streams._subscription_model import glob_match
from services.streams._webhooks import retry_delay, validate_webhook_url
from services.streams.api import StreamsConfig, create_streams_app
from tests.log._poll import eventually

ZERO = "0000000000000000_0000000000000000"


@dataclass(kw_only=True)
class Received:
    body: dict[str, Any]
    raw: bytes
    signature: str
    at: float


@dataclass(kw_only=True)
class Receiver:
    """A webhook endpoint that records every request and answers from a script."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # then 200 {}

    async def handle(self, request: Request) -> JSONResponse:
        raw = await request.body()
        self.received.append(Received(body=json.loads(raw), raw=raw, at=time.monotonic(),
                                      signature=request.headers.get("webhook-signature", "")))
        status, answer = self.answers.pop(0) if self.answers else (200, {})
        return JSONResponse(answer, status_code=status)

    async def requests(self, count: int, *, timeout: float = 10.0) -> list[Received]:
        await eventually(lambda: len(self.received) >= count, timeout=timeout,
                         what=f"{count} webhook request(s)")
        return self.received


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on http://127.0.0.1:<port>/hook (the development exception)."""
    hook = Receiver()
    app = Starlette(routes=[Route("/hook", hook.handle, methods=["POST"])])
    async with serve_app(app) as server:
        hook.url = server.url + "/hook"
        yield hook


@pytest.fixture
def prefix() -> str:
    """A stream folder no other test uses (patterns match under it only)."""
    return f"subtests/{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def subscriptions(streams: httpx.AsyncClient) -> AsyncIterator[list[str]]:
    """Ids of the subscriptions a test creates; deleted after it, so no later server wakes them."""
    created: list[str] = []
    yield created
    for subscription_id in created:
        await streams.delete(f"/__ds/subscriptions/{subscription_id}")


async def _subscribe(streams: httpx.AsyncClient, created: list[str], body: dict[str, Any]
                     ) -> dict[str, Any]:
    subscription_id = f"sub-{uuid.uuid4().hex[:12]}"
    response = await streams.put(f"/__ds/subscriptions/{subscription_id}", json=body)
    assert response.status_code == 201, response.text
    created.append(subscription_id)
    return dict(response.json())


def _verify(received: Received, jwks: dict[str, Any]) -> str:
    """Check the Ed25519 signature of a webhook request against ``jwks``; return its kid."""
    parts = dict(item.split("=", 1) for item in received.signature.split(","))
    key = next(k for k in jwks["keys"] if k["kid"] == parts["kid"])
    public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(key["x"] + "=="))
    signature = base64.urlsafe_b64decode(parts["ed25519"] + "=" * (-len(parts["ed25519"]) % 4))
    public.verify(signature, parts["t"].encode() + b"." + received.raw)
    assert abs(time.time() - int(parts["t"])) < 300
    return parts["kid"]


def _tail(received: Received, path: str) -> str:
    return str(next(s for s in received.body["streams"] if s["path"] == path)["tail_offset"])


async def _acked(streams: httpx.AsyncClient, subscription_id: str, path: str) -> str | None:
    body = (await streams.get(f"/__ds/subscriptions/{subscription_id}")).json()
    return next((s["acked_offset"] for s in body["streams"] if s["path"] == path), None)


async def _report(client: httpx.AsyncClient, url: str, token: str, body: dict[str, Any]
                  ) -> httpx.Response:
    return await client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})


# ---------------------------------------------------------------------- webhooks


async def test_webhook_is_signed_with_the_published_key(
    streams: httpx.AsyncClient, streams_server: RunningServer, receiver: Receiver,
    prefix: str, subscriptions: list[str],
) -> None:
    """A wake POST carries the spec's body and an Ed25519 signature the JWKS verifies."""
    created = await _subscribe(streams, subscriptions, {
        "type": "webhook", "pattern": f"{prefix}/*", "webhook": {"url": receiver.url}})
    signing = created["webhook"]["signing"]
    assert signing["jwks_url"] == streams_server.url + "/v1/stream/__ds/jwks.json"
    jwks_response = await streams.get("/__ds/jwks.json")
    assert jwks_response.headers["content-type"].startswith("application/jwk-set+json")
    assert jwks_response.headers["cache-control"] == "public, max-age=300"
    jwks = jwks_response.json()

    await streams.put(f"/{prefix}/a", json={"event": "created"})
    [wake] = await receiver.requests(1)

    assert _verify(wake, jwks) == signing["kid"]
    assert signing["kid"].startswith("ds_")
    body = wake.body
    assert body["subscription_id"] == subscriptions[0]
    assert body["wake_id"].startswith("w_")
    assert body["generation"] == 1
    assert body["callback_url"] == (
        f"{streams_server.url}/v1/stream/__ds/subscriptions/{subscriptions[0]}/callback")
    [stream] = body["streams"]
    assert stream == {"path": f"{prefix}/a", "link_type": "glob", "acked_offset": ZERO,
                      "tail_offset": "0000000000000000_0000000000000001", "has_pending": True}
    tampered = Received(body=body, raw=wake.raw + b" ", signature=wake.signature, at=0)
    with pytest.raises(InvalidSignature):
        _verify(tampered, jwks)


async def test_done_answer_acks_the_wake_snapshot(
    streams: httpx.AsyncClient, receiver: Receiver, prefix: str, subscriptions: list[str],
) -> None:
    """A ``{"done": true}`` answer acks the tails it was shown; new data wakes a new generation."""
    receiver.answers = [(200, {"done": True}), (200, {"done": True})]
    await _subscribe(streams, subscriptions, {
        "type": "webhook", "pattern": f"{prefix}/*", "webhook": {"url": receiver.url}})
    path = f"{prefix}/a"
    await streams.put(f"/{path}", json={"n": 1})
    [first] = await receiver.requests(1)
    tail = _tail(first, path)

    async def acked_to(offset: str) -> bool:
        return await _acked(streams, subscriptions[0], path) == offset

    await eventually(lambda: acked_to(tail), timeout=5, what="the snapshot's tail acked")

    await streams.post(f"/{path}", json={"n": 2})
    second = (await receiver.requests(2))[1]
    assert second.body["generation"] == first.body["generation"] + 1
    assert second.body["wake_id"] != first.body["wake_id"]
    [stream] = second.body["streams"]
    assert stream["acked_offset"] == tail
    assert stream["has_pending"] is True
    await eventually(lambda: acked_to(_tail(second, path)), timeout=5, what="second ack")


async def test_callback_acks_and_fences_stale_wakes(
    streams: httpx.AsyncClient, receiver: Receiver, prefix: str, subscriptions: list[str],
) -> None:
    """A callback with the wake's token acks; a replay, a forged token and a wrong id fail."""
    await _subscribe(streams, subscriptions, {
        "type": "webhook", "pattern": f"{prefix}/*", "webhook": {"url": receiver.url},
        "lease_ttl_ms": 60_000})
    path = f"{prefix}/a"
    await streams.put(f"/{path}", json={"n": 1})
    [wake] = await receiver.requests(1)
    body = wake.body
    url, token = body["callback_url"], body["callback_token"]
    ack = {"wake_id": body["wake_id"], "generation": body["generation"],
           "acks": [{"stream": path, "offset": _tail(wake, path)}]}

    forged = await _report(streams, url, token[:-2] + "xx", {**ack, "done": True})
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "TOKEN_INVALID"
    wrong_wake = await _report(streams, url, token, {**ack, "wake_id": "w_other"})
    assert wrong_wake.status_code == 409
    assert wrong_wake.json()["error"]["code"] == "FENCED"
    beyond = await _report(streams, url, token, {**ack, "acks": [
        {"stream": path, "offset": "0000000000000000_0000000000000009"}]})
    assert beyond.status_code == 409
    assert beyond.json()["error"]["code"] == "INVALID_OFFSET"

    heartbeat = await _report(streams, url, token, ack)
    assert heartbeat.json() == {"ok": True, "next_wake": False}
    done = await _report(streams, url, token, {**ack, "done": True})
    assert done.status_code == 200
    assert done.json() == {"ok": True, "next_wake": False}
    assert await _acked(streams, subscriptions[0], path) == _tail(wake, path)

    stale = await _report(streams, url, token, {**ack, "done": True})
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "FENCED"


async def test_expired_lease_wakes_again(
    streams: httpx.AsyncClient, receiver: Receiver, prefix: str, subscriptions: list[str],
) -> None:
    """A webhook that never finishes its wake is woken again after lease_ttl_ms."""
    await _subscribe(streams, subscriptions, {
        "type": "webhook", "pattern": f"{prefix}/*", "webhook": {"url": receiver.url},
        "lease_ttl_ms": 1000})
    await streams.put(f"/{prefix}/a", json={"n": 1})
    first, second = (await receiver.requests(2))[:2]
    assert second.body["generation"] == first.body["generation"] + 1
    assert second.at - first.at >= 0.9
    late = await _report(streams, first.body["callback_url"], first.body["callback_token"], {
        "wake_id": first.body["wake_id"], "generation": first.body["generation"],
        "done": True})
    assert late.json()["error"]["code"] == "FENCED"


async def test_failed_delivery_is_retried_with_backoff(
    streams: httpx.AsyncClient, receiver: Receiver, prefix: str, subscriptions: list[str],
) -> None:
    """A 500 marks the subscription failed; the same wake is retried about 1 s later."""
    receiver.answers = [(500, {}), (200, {"done": True})]
    await _subscribe(streams, subscriptions, {
        "type": "webhook", "pattern": f"{prefix}/*", "webhook": {"url": receiver.url},
        "lease_ttl_ms": 1000})
    path = f"{prefix}/a"
    await streams.put(f"/{path}", json={"n": 1})
    [failed] = await receiver.requests(1)

    async def status() -> str:
        return str((await streams.get(f"/__ds/subscriptions/{subscriptions[0]}")).json()[
            "status"])

    async def has_status(wanted: str) -> bool:
        return await status() == wanted

    await eventually(lambda: has_status("failed"), timeout=2, what="status failed")
    retried = (await receiver.requests(2))[1]
    assert retried.body["wake_id"] == failed.body["wake_id"]
    assert 0.7 <= retried.at - failed.at <= 3.0

    async def acked() -> bool:
        return await _acked(streams, subscriptions[0], path) == _tail(retried, path)

    await eventually(acked, timeout=5, what="the retried wake acked")
    assert await status() == "active"


def test_retry_delays_double_up_to_a_minute_with_jitter() -> None:
    """Retry n waits 2^(n-1) s (at most 60 s), each within ±20 %."""
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (30, 60.0)]:
        delay = retry_delay(attempt)
        assert base * 0.8 <= delay <= base * 1.2


@pytest.mark.parametrize("url", [
    "http://10.0.0.1/hook", "http://example.com/hook", "https://10.1.2.3/hook",
    "https://192.168.1.1/hook", "https://172.16.0.5/hook", "https://169.254.169.254/latest",
    "https://127.0.0.1/hook", "https://localhost/hook", "https://[::1]/hook",
    "https://[fd00::1]/hook", "https://[::ffff:10.0.0.1]/hook", "https://2130706433/hook",
    "https://metadata.google.internal/", "ftp://example.com/hook", "https://user:pw@example.com/",
    "not a url",
])
def test_unsafe_webhook_urls_are_rejected(url: str) -> None:
    """Private, loopback, link-local and metadata targets are refused (SSRF)."""
    with pytest.raises(WebhookUrlRejectedError):
        validate_webhook_url(url)


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/x", "http://localhost:8080/hook", "http://127.0.0.7/hook",
    "https://8.8.8.8/hook",
])
def test_public_and_development_webhook_urls_are_accepted(url: str) -> None:
    """Public https URLs and the localhost development exception pass validation."""
    validate_webhook_url(url)


async def test_rejected_webhook_url_answers_the_protocol_error(
    streams: httpx.AsyncClient,
) -> None:
    """PUT with a private webhook URL is 400 ``WEBHOOK_URL_REJECTED`` and creates nothing."""
    response = await streams.put("/__ds/subscriptions/unsafe-sub", json={
        "type": "webhook", "pattern": "x/*", "webhook": {"url": "http://10.0.0.1/hook"}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "WEBHOOK_URL_REJECTED"
    assert (await streams.get("/__ds/subscriptions/unsafe-sub")).status_code == 404


# ---------------------------------------------------------------------- configuration


async def test_put_reconfirms_identical_and_refuses_other_configuration(
    streams: httpx.AsyncClient, receiver: Receiver, prefix: str, subscriptions: list[str],
) -> None:
    """The same configuration re-confirms (200, no secret); another one is 409."""
    config = {"type": "webhook", "pattern": f"{prefix}/*", "webhook": {"url": receiver.url},
              "description": "d"}
    created = await _subscribe(streams, subscriptions, config)
    assert "webhook_secret" not in created
    url = f"/__ds/subscriptions/{subscriptions[0]}"
    again = await streams.put(url, json=config)
    assert again.status_code == 200
    assert again.json()["created_at"] == created["created_at"]
    other = await streams.put(url, json={**config, "description": "other"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "SUBSCRIPTION_ALREADY_EXISTS"
    invalid = await streams.put(url, json={"type": "webhook", "webhook": {"url": receiver.url}})
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "INVALID_REQUEST"


async def test_explicit_links_and_glob_links_combine(
    streams: httpx.AsyncClient, receiver: Receiver, prefix: str, subscriptions: list[str],
) -> None:
    """Explicit links win in responses; removing one keeps a glob link that still matches."""
    await streams.put(f"/{prefix}/old", json={"n": 1})
    created = await _subscribe(streams, subscriptions, {
        "type": "webhook", "pattern": f"{prefix}/*", "streams": ["elsewhere/manual"],
        "webhook": {"url": receiver.url}})
    links = {s["path"]: s for s in created["streams"]}
    # Backfilled at the tail: creating a subscription replays no history.
    assert links[f"{prefix}/old"] == {"path": f"{prefix}/old", "link_type": "glob",
                                      "acked_offset": "0000000000000000_0000000000000001"}
    assert links["elsewhere/manual"]["link_type"] == "explicit"
    url = f"/__ds/subscriptions/{subscriptions[0]}"

    added = await streams.post(f"{url}/streams", json={"streams": [f"{prefix}/old", "x/y"]})
    assert added.status_code == 204
    body = (await streams.get(url)).json()
    types = {s["path"]: s["link_type"] for s in body["streams"]}
    assert types[f"{prefix}/old"] == "explicit"
    assert types["x/y"] == "explicit"

    for path in (f"{prefix}/old", "x/y", "never/linked"):
        removed = await streams.delete(f"{url}/streams/{path.replace('/', '%2F')}")
        assert removed.status_code == 204
    types = {s["path"]: s["link_type"] for s in (await streams.get(url)).json()["streams"]}
    assert types == {f"{prefix}/old": "glob", "elsewhere/manual": "explicit"}


async def test_reserved_prefix_is_never_a_stream(streams: httpx.AsyncClient) -> None:
    """Paths under ``__ds`` answer the control API's 404, never create a stream."""
    response = await streams.put("/__ds/some-stream", content=b"x",
                                 headers={"Content-Type": "text/plain"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "SUBSCRIPTION_NOT_FOUND"
    assert (await streams.get("/__ds/subscriptions/none")).status_code == 404


def test_glob_segments() -> None:
    """``*`` matches one path segment, ``**`` zero or more."""
    assert glob_match("events/*", "events/a")
    assert not glob_match("events/*", "events/a/b")
    assert not glob_match("events/*", "events")
    assert glob_match("events/**", "events")
    assert glob_match("events/**/x", "events/a/b/x")
    assert glob_match("**", "a/b")
    assert not glob_match("events/*", "other/a")


# ---------------------------------------------------------------------- pull-wake


async def test_pull_wake_claim_ack_and_release(
    streams: httpx.AsyncClient, prefix: str, subscriptions: list[str],
) -> None:
    """Wake events go to the wake stream; one worker holds the lease; stale tokens are fenced."""
    wake_stream = f"{prefix}-wake"
    await streams.put(f"/{wake_stream}", content=b"[]",
                      headers={"Content-Type": "application/json"})
    await _subscribe(streams, subscriptions, {
        "type": "pull-wake", "pattern": f"{prefix}/*", "wake_stream": wake_stream,
        "lease_ttl_ms": 60_000})
    url = f"/__ds/subscriptions/{subscriptions[0]}"
    path = f"{prefix}/a"

    async def wake_events() -> list[dict[str, Any]]:
        return list((await streams.get(f"/{wake_stream}")).json())

    async def woken(count: int) -> bool:
        return len(await wake_events()) >= count

    nothing = await streams.post(f"{url}/claim", json={"worker": "w1"})
    assert nothing.json()["error"]["code"] == "NO_PENDING_WORK"
    await streams.put(f"/{path}", json={"n": 1})
    await eventually(lambda: woken(1), timeout=5, what="a wake event")
    [event] = await wake_events()
    assert event["type"] == "wake"
    assert event["subscription_id"] == subscriptions[0]
    assert event["stream"] == path

    claim = await streams.post(f"{url}/claim", json={"worker": "w1"})
    assert claim.status_code == 200
    claimed = claim.json()
    assert claimed["generation"] == event["generation"]
    assert claimed["lease_ttl_ms"] == 60_000
    busy = await streams.post(f"{url}/claim", json={"worker": "w2"})
    assert busy.status_code == 409
    assert busy.json()["error"] == {
        "code": "ALREADY_CLAIMED", "current_holder": "w1", "generation": claimed["generation"],
        "message": busy.json()["error"]["message"]}

    tail = next(s for s in claimed["streams"] if s["path"] == path)["tail_offset"]
    ack = {"wake_id": claimed["wake_id"], "generation": claimed["generation"],
           "acks": [{"stream": path, "offset": tail}]}
    heartbeat = await _report(streams, f"{url}/ack", claimed["token"], ack)
    assert heartbeat.json() == {"ok": True, "next_wake": False}
    done = await _report(streams, f"{url}/ack", claimed["token"], {**ack, "done": True})
    assert done.json() == {"ok": True, "next_wake": False}

    await streams.post(f"/{path}", json={"n": 2})
    second = (await streams.post(f"{url}/claim", json={"worker": "w2"})).json()
    assert second["generation"] > claimed["generation"]
    stale = await _report(streams, f"{url}/ack", claimed["token"], {**ack, "done": True})
    assert stale.json()["error"]["code"] == "FENCED"
    released = await _report(streams, f"{url}/release", second["token"], {
        "wake_id": second["wake_id"], "generation": second["generation"]})
    assert released.status_code == 204

    # Work is still pending after the release: a later wake event announces it.
    async def rewoken() -> bool:
        return any(e["generation"] > second["generation"] for e in await wake_events())

    await eventually(rewoken, timeout=5, what="a wake event after the release")
    third = (await streams.post(f"{url}/claim", json={"worker": "w3"})).json()
    assert third["generation"] > second["generation"]


async def test_deleted_subscription_refuses_its_tokens(
    streams: httpx.AsyncClient, prefix: str, subscriptions: list[str],
) -> None:
    """After DELETE, the wake's ack fails and a re-created subscription ignores old tokens."""
    wake_stream = f"{prefix}-wake"
    await streams.put(f"/{wake_stream}", content=b"[]",
                      headers={"Content-Type": "application/json"})
    config = {"type": "pull-wake", "streams": [f"{prefix}/a"], "wake_stream": wake_stream}
    await _subscribe(streams, subscriptions, config)
    url = f"/__ds/subscriptions/{subscriptions[0]}"
    await streams.put(f"/{prefix}/a", json={"n": 1})
    claimed = (await streams.post(f"{url}/claim", json={"worker": "w1"})).json()
    report = {"wake_id": claimed["wake_id"], "generation": claimed["generation"], "done": True}

    assert (await streams.delete(url)).status_code == 204
    gone = await _report(streams, f"{url}/ack", claimed["token"], report)
    assert gone.status_code == 404
    assert (await streams.put(url, json=config)).status_code == 201
    assert (await streams.post(f"{url}/claim", json={"worker": "w1"})).status_code == 409
    old = await _report(streams, f"{url}/ack", claimed["token"], report)
    assert old.status_code == 401


# ---------------------------------------------------------------------- restarts


async def test_subscriptions_and_signing_key_survive_a_restart(
    kafka_bootstrap: str, receiver: Receiver, prefix: str,
) -> None:
    """A second server on the same log has the subscription, its wake, tokens and key."""
    settings = Settings.from_env("streams-test", {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    subscription_id = f"sub-{uuid.uuid4().hex[:12]}"
    path = f"{prefix}/a"

    def app() -> Any:
        return create_streams_app(settings, StreamsConfig(long_poll_timeout=1.0))

    async with serve_app(app()) as first, httpx.AsyncClient(
            base_url=first.url + "/v1/stream") as client:
        created = (await client.put(f"/__ds/subscriptions/{subscription_id}", json={
            "type": "webhook", "pattern": f"{prefix}/*", "webhook": {"url": receiver.url},
            "lease_ttl_ms": 60_000})).json()
        await client.put(f"/{path}", json={"n": 1})
        [wake] = await receiver.requests(1)
        before = (await client.get(f"/__ds/subscriptions/{subscription_id}")).json()

    async with serve_app(app()) as second, httpx.AsyncClient(
            base_url=second.url + "/v1/stream") as client:
        try:
            after = (await client.get(f"/__ds/subscriptions/{subscription_id}")).json()
            assert after == before
            jwks = (await client.get("/__ds/jwks.json")).json()
            assert [k["kid"] for k in jwks["keys"]] == [created["webhook"]["signing"]["kid"]]
            assert _verify(wake, jwks) == created["webhook"]["signing"]["kid"]

            # The wake in flight and its token outlive the first server.
            done = await _report(client, f"/__ds/subscriptions/{subscription_id}/callback",
                                 wake.body["callback_token"], {
                                     "wake_id": wake.body["wake_id"],
                                     "generation": wake.body["generation"],
                                     "acks": [{"stream": path, "offset": _tail(wake, path)}],
                                     "done": True})
            assert done.json() == {"ok": True, "next_wake": False}

            await client.post(f"/{path}", json={"n": 2})
            later = (await receiver.requests(2))[1]
            assert later.body["generation"] == wake.body["generation"] + 1
            assert _verify(later, jwks) == created["webhook"]["signing"]["kid"]
        finally:
            await client.delete(f"/__ds/subscriptions/{subscription_id}")


async def test_wake_tokens_work_alongside_the_bearer_secret(
    kafka_bootstrap: str, prefix: str,
) -> None:
    """With STREAMS_SECRET, claims need the secret; acks authenticate with the claim token."""
    config = StreamsConfig.from_env({"STREAMS_SECRET": "s3cret"})
    settings = Settings.from_env("streams-auth", {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    secret = {"Authorization": "Bearer s3cret"}
    subscription_id = f"sub-{uuid.uuid4().hex[:12]}"
    url = f"/__ds/subscriptions/{subscription_id}"
    async with serve_app(create_streams_app(settings, config)) as server, httpx.AsyncClient(
        base_url=server.url + "/v1/stream"
    ) as http:
        await http.put(f"/{prefix}-wake", content=b"[]",
                       headers={"Content-Type": "application/json", **secret})
        created = await http.put(url, headers=secret, json={
            "type": "pull-wake", "streams": [f"{prefix}/a"], "wake_stream": f"{prefix}-wake"})
        assert created.status_code == 201
        try:
            await http.put(f"/{prefix}/a", json={"n": 1}, headers=secret)
            assert (await http.post(f"{url}/claim", json={"worker": "w"})).status_code == 401
            claimed = (await http.post(f"{url}/claim", json={"worker": "w"},
                                       headers=secret)).json()
            report = {"wake_id": claimed["wake_id"], "generation": claimed["generation"]}
            forged = await _report(http, f"{url}/ack", "not-a-token", report)
            assert forged.status_code == 401
            assert forged.json()["error"]["code"] == "TOKEN_INVALID"
            acked = await _report(http, f"{url}/ack", claimed["token"], report)
            assert acked.json() == {"ok": True, "next_wake": False}
            # The exemption covers the control routes only, never a stream at a lookalike path.
            lookalike = await http.post(f"/x{url}/ack", content=b"x",
                                        headers={"Content-Type": "text/plain"})
            assert lookalike.status_code == 401
        finally:
            await http.delete(url, headers=secret)
