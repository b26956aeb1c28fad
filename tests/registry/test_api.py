"""The REST API against a real server: Confluent's routes, JSON shapes and error codes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.registry.conftest import V1_JSON, body, record

USER = record("User", {"name": "id", "type": "long"})
USER_V2 = record("User", {"name": "id", "type": "long"},
                 {"name": "email", "type": ["null", "string"], "default": None})
ORDER = record("Order", {"name": "total", "type": "double"})


async def register(api: httpx.AsyncClient, subject: str, schema: Any) -> int:
    response = await api.post(f"/subjects/{subject}/versions", json=body(schema))
    assert response.status_code == 200, response.text
    schema_id: int = response.json()["id"]
    return schema_id


def error(response: httpx.Response) -> tuple[int, int]:
    """The HTTP status and Confluent error code of an error response."""
    assert response.headers["content-type"].startswith(V1_JSON)
    document = response.json()
    assert set(document) == {"error_code", "message"}
    assert document["message"]
    return response.status_code, document["error_code"]


async def test_register_returns_a_global_id_and_the_same_schema_gets_it_again(
    api: httpx.AsyncClient,
) -> None:
    """Registering answers {"id"}; the same schema (any layout) keeps its id in every subject."""
    response = await api.post("/subjects/users-value/versions", json=body(USER))
    assert response.status_code == 200
    assert response.headers["content-type"] == V1_JSON
    assert response.json() == {"id": 1}
    assert await register(api, "users-value", json.dumps(USER, indent=4)) == 1
    assert await register(api, "archive-value", USER) == 1
    assert await register(api, "orders-value", ORDER) == 2
    assert await register(api, "users-value", USER_V2) == 3
    assert (await api.get("/subjects/users-value/versions")).json() == [1, 2]


async def test_subjects_versions_and_schemas_read_back(api: httpx.AsyncClient) -> None:
    """GET /subjects, /versions, /versions/{n|latest|-1}, /schema and /schemas/ids/* agree."""
    await register(api, "users-value", USER)
    await register(api, "users-value", USER_V2)
    await register(api, "orders-value", ORDER)
    assert (await api.get("/subjects")).json() == ["orders-value", "users-value"]
    assert (await api.get("/subjects", params={"subjectPrefix": "us"})).json() == ["users-value"]
    first = (await api.get("/subjects/users-value/versions/1")).json()
    assert first["subject"] == "users-value"
    assert (first["version"], first["id"]) == (1, 1)
    assert json.loads(first["schema"]) == USER
    for latest in ("latest", "-1"):
        found = (await api.get(f"/subjects/users-value/versions/{latest}")).json()
        assert (found["version"], found["id"]) == (2, 2)
    raw = await api.get("/subjects/users-value/versions/2/schema")
    assert raw.json() == USER_V2
    assert (await api.get("/schemas/ids/3")).json() == {"schema": json.dumps(
        ORDER, separators=(",", ":"))}
    assert (await api.get("/schemas/ids/1/schema")).json() == USER
    assert (await api.get("/schemas/ids/2/versions")).json() == [
        {"subject": "users-value", "version": 2}]
    assert (await api.get("/schemas/ids/1/subjects")).json() == ["users-value"]
    assert (await api.get("/schemas/types")).json() == ["AVRO"]
    assert (await api.get("/subjects/users-value/versions/1/referencedby")).json() == []


async def test_missing_subjects_versions_and_schemas_answer_confluent_404s(
    api: httpx.AsyncClient,
) -> None:
    """40401 subject, 40402 version, 40403 schema — in Confluent's error body."""
    await register(api, "users-value", USER)
    assert error(await api.get("/subjects/nobody/versions")) == (404, 40401)
    assert error(await api.get("/subjects/nobody/versions/latest")) == (404, 40401)
    assert error(await api.get("/subjects/users-value/versions/7")) == (404, 40402)
    assert error(await api.get("/schemas/ids/99")) == (404, 40403)
    assert error(await api.get("/schemas/ids/abc")) == (404, 40403)
    assert error(await api.get("/schemas/ids/99/versions")) == (404, 40403)


async def test_versions_that_are_not_numbers_or_latest_answer_42202(
    api: httpx.AsyncClient,
) -> None:
    """0, negative numbers other than -1, text and numbers past 2^31-1 are invalid versions."""
    await register(api, "users-value", USER)
    for version in ("0", "-2", "abc", "2147483648"):
        assert error(await api.get(f"/subjects/users-value/versions/{version}")) == (422, 42202)
    assert error(await api.delete("/subjects/users-value/versions/abc")) == (422, 42202)


async def test_invalid_schemas_answer_42201_and_malformed_bodies_400(
    api: httpx.AsyncClient,
) -> None:
    """Bad JSON, unknown types, bad defaults, other schema types and references are refused."""
    bad = [
        {"schema": "{not json"},
        {"schema": json.dumps({"type": "nope"})},
        {"schema": json.dumps(record("R", {"name": "a", "type": "int", "default": "x"}))},
        {"schema": json.dumps(record("R", {"name": "a", "type": ["null", "int"],
                                           "default": 1}))},
        {"schema": json.dumps(USER), "schemaType": "PROTOBUF"},
        {"schema": json.dumps(USER), "references": [{"name": "x", "subject": "y",
                                                     "version": 1}]},
        {},
        {"schema": ""},
    ]
    for document in bad:
        response = await api.post("/subjects/s/versions", json=document)
        assert error(response) == (422, 42201), document
    refused = await api.post("/subjects/s/versions", json=bad[2])
    assert "default of field 'a'" in refused.json()["message"]
    assert error(await api.post("/subjects/s/versions", content=b"{oops")) == (400, 400)
    assert error(await api.post("/subjects/s/versions", json=["a"])) == (400, 400)
    assert (await api.get("/subjects")).json() == []


async def test_lookup_finds_the_version_holding_a_schema(api: httpx.AsyncClient) -> None:
    """POST /subjects/{s} answers the version with this schema, or 40403 / 40401."""
    await register(api, "users-value", USER)
    await register(api, "users-value", USER_V2)
    found = await api.post("/subjects/users-value", json=body(json.dumps(USER, indent=2)))
    assert found.status_code == 200
    assert {k: v for k, v in found.json().items() if k != "schema"} == {
        "subject": "users-value", "version": 1, "id": 1}
    assert error(await api.post("/subjects/users-value", json=body(ORDER))) == (404, 40403)
    assert error(await api.post("/subjects/nobody", json=body(USER))) == (404, 40401)
    assert error(await api.post("/subjects/users-value", json=body("{x"))) == (422, 42201)


async def test_an_incompatible_schema_is_refused_with_409_naming_the_field(
    api: httpx.AsyncClient,
) -> None:
    """Under BACKWARD (the default), a new field without a default is a 409 and not stored."""
    await register(api, "users-value", USER)
    breaking = record("User", {"name": "id", "type": "long"}, {"name": "age", "type": "int"})
    response = await api.post("/subjects/users-value/versions", json=body(breaking))
    assert error(response) == (409, 409)
    assert "'age'" in response.json()["message"]
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in response.json()["message"]
    assert (await api.get("/subjects/users-value/versions")).json() == [1]


async def test_each_level_is_enforced_on_registration(api: httpx.AsyncClient) -> None:
    """FORWARD refuses a removed required field, NONE takes anything, transitive sees v1."""
    await register(api, "fwd", record("R", {"name": "a", "type": "int"},
                                      {"name": "b", "type": "int"}))
    assert (await api.put("/config/fwd", json={"compatibility": "FORWARD"})).status_code == 200
    dropped = record("R", {"name": "a", "type": "int"})
    assert error(await api.post("/subjects/fwd/versions", json=body(dropped))) == (409, 409)
    added = record("R", {"name": "a", "type": "int"}, {"name": "b", "type": "int"},
                   {"name": "c", "type": "int"})
    assert (await api.post("/subjects/fwd/versions", json=body(added))).status_code == 200
    await api.put("/config/fwd", json={"compatibility": "NONE"})
    assert (await api.post("/subjects/fwd/versions", json=body('"string"'))).status_code == 200

    v1 = record("R", {"name": "a", "type": "int"})
    v2 = record("R", {"name": "a", "type": "int"},
                {"name": "b", "type": "string", "default": ""})
    v3 = record("R", {"name": "b", "type": "string"})  # reads v2 data, not v1 data
    for subject, level, accepted in (("plain", "BACKWARD", True),
                                     ("transitive", "BACKWARD_TRANSITIVE", False)):
        await register(api, subject, v1)
        await register(api, subject, v2)
        await api.put(f"/config/{subject}", json={"compatibility": level})
        response = await api.post(f"/subjects/{subject}/versions", json=body(v3))
        assert (response.status_code == 200) is accepted, (level, response.text)


async def test_config_reads_sets_and_removes_levels(api: httpx.AsyncClient) -> None:
    """GET/PUT/DELETE /config and /config/{s}: BACKWARD by default, 40408, 42203."""
    assert (await api.get("/config")).json() == {"compatibilityLevel": "BACKWARD"}
    put = await api.put("/config", json={"compatibility": "full"})
    assert put.json() == {"compatibility": "FULL"}
    assert (await api.get("/config")).json() == {"compatibilityLevel": "FULL"}
    assert error(await api.get("/config/users-value")) == (404, 40408)
    inherited = await api.get("/config/users-value", params={"defaultToGlobal": "true"})
    assert inherited.json() == {"compatibilityLevel": "FULL"}
    await api.put("/config/users-value", json={"compatibility": "FORWARD_TRANSITIVE"})
    own = await api.get("/config/users-value")
    assert own.json() == {"compatibilityLevel": "FORWARD_TRANSITIVE"}
    for level in ("SIDEWAYS", 3, None):
        response = await api.put("/config/users-value", json={"compatibility": level})
        assert error(response) == (422, 42203)
    removed = await api.delete("/config/users-value")
    assert removed.json() == {"compatibilityLevel": "FORWARD_TRANSITIVE"}
    assert error(await api.get("/config/users-value")) == (404, 40408)
    assert error(await api.delete("/config/nobody")) == (404, 40401)
    assert (await api.delete("/config")).json() == {"compatibilityLevel": "FULL"}
    assert (await api.get("/config")).json() == {"compatibilityLevel": "BACKWARD"}


async def test_compatibility_endpoint_answers_is_compatible(api: httpx.AsyncClient) -> None:
    """POST /compatibility/subjects/{s}/versions/{v|latest}, with verbose messages."""
    await register(api, "users-value", USER)
    await register(api, "users-value", USER_V2)
    breaking = record("User", {"name": "id", "type": "string"})
    path = "/compatibility/subjects/users-value/versions"
    assert (await api.post(f"{path}/latest", json=body(USER_V2))).json() == {
        "is_compatible": True}
    assert (await api.post(f"{path}/1", json=body(breaking))).json() == {"is_compatible": False}
    verbose = await api.post(f"{path}/latest", json=body(breaking),
                             params={"verbose": "true"})
    assert verbose.json()["is_compatible"] is False
    assert any("TYPE_MISMATCH" in m and "'id'" in m for m in verbose.json()["messages"])
    assert (await api.post(path, json=body(breaking))).json() == {"is_compatible": False}
    fresh = "/compatibility/subjects/nobody/versions"
    assert (await api.post(fresh, json=body(breaking))).json() == {"is_compatible": True}
    assert error(await api.post(f"{fresh}/latest", json=body(USER))) == (404, 40401)
    assert error(await api.post(f"{path}/9", json=body(USER))) == (404, 40402)
    assert error(await api.post(f"{path}/zero", json=body(USER))) == (422, 42202)
    assert error(await api.post(f"{path}/latest", json=body("{x"))) == (422, 42201)


async def test_soft_and_permanent_delete_of_versions(api: httpx.AsyncClient) -> None:
    """A soft-deleted version hides (40402) but keeps its id; permanent needs soft first."""
    await register(api, "users-value", USER)
    await register(api, "users-value", USER_V2)
    assert (await api.delete("/subjects/users-value/versions/1")).json() == 1
    assert (await api.get("/subjects/users-value/versions")).json() == [2]
    assert error(await api.get("/subjects/users-value/versions/1")) == (404, 40402)
    hidden = await api.get("/subjects/users-value/versions/1", params={"deleted": "true"})
    assert hidden.json()["id"] == 1
    listed = await api.get("/subjects/users-value/versions", params={"deleted": "true"})
    assert listed.json() == [1, 2]
    assert (await api.get("/schemas/ids/1")).status_code == 200
    assert error(await api.delete("/subjects/users-value/versions/1")) == (404, 40406)
    live = await api.delete("/subjects/users-value/versions/2", params={"permanent": "true"})
    assert error(live) == (404, 40407)
    gone = await api.delete("/subjects/users-value/versions/1", params={"permanent": "true"})
    assert gone.json() == 1
    listed = await api.get("/subjects/users-value/versions", params={"deleted": "true"})
    assert listed.json() == [2]
    assert error(await api.get("/schemas/ids/1")) == (404, 40403)
    assert error(await api.delete("/subjects/users-value/versions/5")) == (404, 40402)
    assert error(await api.delete("/subjects/nobody/versions/1")) == (404, 40401)


async def test_soft_and_permanent_delete_of_subjects(api: httpx.AsyncClient) -> None:
    """DELETE /subjects/{s} hides it (40404 twice); permanent needs soft first (40405)."""
    await register(api, "users-value", USER)
    await register(api, "users-value", USER_V2)
    await register(api, "orders-value", ORDER)
    assert error(await api.delete("/subjects/orders-value", params={"permanent": "true"})) == (
        404, 40405)
    assert (await api.delete("/subjects/users-value")).json() == [1, 2]
    assert (await api.get("/subjects")).json() == ["orders-value"]
    everything = await api.get("/subjects", params={"deleted": "true"})
    assert everything.json() == ["orders-value", "users-value"]
    assert error(await api.get("/subjects/users-value/versions")) == (404, 40401)
    assert error(await api.delete("/subjects/users-value")) == (404, 40404)
    assert (await api.get("/schemas/ids/2")).status_code == 200
    # Registering a soft-deleted schema again makes a new version with the same id.
    assert await register(api, "users-value", USER) == 1
    assert (await api.get("/subjects/users-value/versions")).json() == [3]
    await api.delete("/subjects/users-value")
    permanent = await api.delete("/subjects/users-value", params={"permanent": "true"})
    assert permanent.json() == [1, 2, 3]
    everything = await api.get("/subjects", params={"deleted": "true"})
    assert everything.json() == ["orders-value"]
    assert error(await api.delete("/subjects/nobody")) == (404, 40401)
    # Ids are never handed to another schema, even after a permanent delete.
    assert await register(api, "other-value", record("Other", {"name": "x", "type": "int"})) == 4


async def test_content_types_and_unknown_routes(api: httpx.AsyncClient) -> None:
    """Plain JSON and a missing content type are accepted; unknown routes answer Confluent 404."""
    plain = await api.post("/subjects/s/versions", content=json.dumps(body(USER)),
                           headers={"Content-Type": "application/json"})
    assert plain.json() == {"id": 1}
    bare = await api.post("/subjects/s/versions", content=json.dumps(body(USER)),
                          headers={"Content-Type": ""})
    assert bare.json() == {"id": 1}
    assert error(await api.get("/no/such/route")) == (404, 404)
    assert error(await api.get("/subjects", params={"deleted": "maybe"})) == (422, 422)
    assert (await api.get("/")).json() == {}


async def test_health_and_openapi(api: httpx.AsyncClient) -> None:
    """The kernel's health checks and OpenAPI come with the registry."""
    ready = await api.get("/health/ready")
    assert ready.json() == {"status": "ready", "checks": {"log": "ok"}}
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert "/subjects/{subject}/versions" in paths
    assert "/compatibility/subjects/{subject}/versions/{version}" in paths
    request = paths["/subjects/{subject}/versions"]["post"]["requestBody"]
    assert "schema" in request["content"][V1_JSON]["schema"]["properties"]


async def test_concurrent_registrations_get_distinct_ids_and_versions(
    api: httpx.AsyncClient,
) -> None:
    """Registrations racing on one subject are serialized: no id or version is handed out twice."""
    await api.put("/config/racy", json={"compatibility": "NONE"})
    schemas = [record(f"R{n}", {"name": "x", "type": "int"}) for n in range(8)]
    ids = await asyncio.gather(*(register(api, "racy", schema) for schema in schemas))
    assert sorted(ids) == list(range(1, 9))
    assert (await api.get("/subjects/racy/versions")).json() == list(range(1, 9))
