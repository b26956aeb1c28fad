"""The app factory: health endpoints, problem+json errors, OpenAPI — on a real uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field

from services.kernel import ProblemError, Settings, create_app, kafka_ready
from services.kernel.testing import serve_app
from services.log import Broker


class NewUser(BaseModel):
    email: str = Field(pattern=r".+@.+")
    age: int


def build_app(bootstrap: str) -> FastAPI:
    settings = Settings.from_env("kernel-test", {"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    app = create_app(title="kernel test", settings=settings,
                     readiness={"log": kafka_ready(settings)})

    @app.post("/users")
    async def create(user: NewUser) -> NewUser:
        return user

    @app.get("/orders/{order_id}")
    async def order(order_id: str) -> dict[str, str]:
        raise ProblemError(404, "Order not found", f"no order {order_id!r}",
                           extensions={"order_id": order_id})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


@pytest.fixture
async def client(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_app(build_app(broker.bootstrap_servers)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        yield http


async def test_live_and_ready_when_the_log_answers(client: httpx.AsyncClient) -> None:
    """/health/live and /health/ready answer 200 while the log is up."""
    assert (await client.get("/health/live")).json()["status"] == "ok"
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"log": "ok"}}


async def test_not_ready_when_the_log_is_down() -> None:
    """/health/ready is a 503 problem naming the dependency that does not answer."""
    async with (
        serve_app(build_app("127.0.0.1:1")) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        assert (await http.get("/health/live")).status_code == 200
        ready = await http.get("/health/ready")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    body = ready.json()
    assert body["status"] == 503
    assert "log" in body["detail"]
    assert body["checks"]["log"] != "ok"


async def test_invalid_body_names_the_field(client: httpx.AsyncClient) -> None:
    """A request that fails validation is a 422 problem pointing at each bad field."""
    response = await client.post("/users", json={"email": "nope", "age": "old"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    pointers = {error["pointer"] for error in response.json()["errors"]}
    assert pointers == {"#/body/email", "#/body/age"}


async def test_problem_error_renders_its_members(client: httpx.AsyncClient) -> None:
    """A ProblemError keeps its status, title, detail and extension members."""
    response = await client.get("/orders/o-1")
    assert response.status_code == 404
    assert response.json() == {
        "type": "about:blank", "title": "Order not found", "status": 404,
        "detail": "no order 'o-1'", "instance": "/orders/o-1", "order_id": "o-1",
    }


async def test_unknown_route_is_a_problem(client: httpx.AsyncClient) -> None:
    """Framework errors (404, 405) are problem+json too."""
    response = await client.delete("/users")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Method Not Allowed"


async def test_unexpected_error_hides_internals(client: httpx.AsyncClient) -> None:
    """An unhandled exception is a 500 problem that leaks nothing, and the server keeps going."""
    response = await client.get("/boom")
    assert response.status_code == 500
    assert "secret" not in response.text
    assert (await client.get("/health/live")).status_code == 200


async def test_openapi_documents_the_routes(client: httpx.AsyncClient) -> None:
    """The OpenAPI document lists the service's routes and health endpoints."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/users", "/orders/{order_id}", "/health/live", "/health/ready"} <= set(paths)
