"""STREAMS_SECRET: every request needs the bearer secret; a wrong one writes nothing."""

from __future__ import annotations

import httpx

from services.kernel import Settings
from services.kernel.testing import serve_app
from services.streams.api import StreamsConfig, create_streams_app


async def test_wrong_or_missing_secret_is_401_and_writes_nothing(
    kafka_bootstrap: str, stream_path: str
) -> None:
    """Without the right bearer token: 401 problem+json, and the stream is never created."""
    config = StreamsConfig.from_env({"STREAMS_SECRET": "s3cret"})
    settings = Settings.from_env("streams-auth", {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    async with serve_app(create_streams_app(settings, config)) as server, httpx.AsyncClient(
        base_url=server.url + "/v1/stream"
    ) as http:
        missing = await http.put(stream_path, content=b"x",
                                 headers={"Content-Type": "text/plain"})
        wrong = await http.put(stream_path, content=b"x", headers={
            "Content-Type": "text/plain", "Authorization": "Bearer nope"})
        good = {"Authorization": "Bearer s3cret"}
        absent = await http.head(stream_path, headers=good)
        created = await http.put(stream_path, content=b"x",
                                 headers={"Content-Type": "text/plain", **good})
        health = await http.get(server.url + "/health/live")
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 401
    assert absent.status_code == 404
    assert created.status_code == 201
    assert health.status_code == 200


def test_durable_streams_secret_is_an_alias() -> None:
    """DURABLE_STREAMS_SECRET configures the secret when STREAMS_SECRET is unset."""
    assert StreamsConfig.from_env({"DURABLE_STREAMS_SECRET": "a"}).secret == "a"
    assert StreamsConfig.from_env({}).secret is None
    assert StreamsConfig.from_env({"STREAMS_PORT": "5000"}).port == 5000
