"""The schema registry gateway (``:8081``): Confluent's Schema Registry REST API.

``create_registry_app`` builds the FastAPI app; its lifespan connects to the log and replays the
``_schemas`` topic before the first request. Health checks and OpenAPI come from the kernel.
Errors answer in Confluent's shape, ``{"error_code": 40401, "message": "..."}``, with
``application/vnd.schemaregistry.v1+json`` — what Confluent's clients (librdkafka's serdes,
confluent-kafka, kcat) parse — rather than the kernel's problem+json.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.kernel import Settings, create_app, kafka_ready
from services.registry._compatibility import DEFAULT_LEVEL, CompatibilityLevel
from services.registry._errors import (
    InvalidSchemaError,
    MalformedRequestError,
    RegistryApiError,
)
from services.registry._registry import SchemaRegistry, parse_schema_id
from services.registry._state import SchemaVersion
from services.registry._store import DEFAULT_TOPIC

DEFAULT_PORT = 8081
SCHEMA_REGISTRY_JSON = "application/vnd.schemaregistry.v1+json"


@dataclass(frozen=True, kw_only=True, slots=True)
class RegistryConfig:
    """How the registry runs (read once from the environment by the CLI)."""

    port: int = DEFAULT_PORT
    topic: str = DEFAULT_TOPIC
    default_compatibility: CompatibilityLevel = DEFAULT_LEVEL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RegistryConfig:
        """``REGISTRY_PORT`` (or ``PORT``), ``SCHEMA_REGISTRY_TOPIC``, ``SCHEMA_COMPATIBILITY``."""
        env = os.environ if environ is None else environ
        port = env.get("REGISTRY_PORT") or env.get("PORT")
        level = env.get("SCHEMA_COMPATIBILITY")
        return cls(
            port=int(port) if port else DEFAULT_PORT,
            topic=env.get("SCHEMA_REGISTRY_TOPIC") or DEFAULT_TOPIC,
            default_compatibility=CompatibilityLevel.parse(level) if level else DEFAULT_LEVEL,
        )


class RegistryResponse(JSONResponse):
    """JSON with Confluent's media type."""

    media_type = SCHEMA_REGISTRY_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


# ---------------------------------------------------------------------- documented shapes


class RegisterSchemaRequest(BaseModel):
    """A schema to register, look up or test."""

    model_config = ConfigDict(populate_by_name=True)
    schema_: str = Field(alias="schema", description="The Avro schema, as a JSON string.")
    schemaType: str = Field("AVRO", description="Only AVRO is supported.")
    references: list[dict[str, Any]] = Field(default_factory=list,
                                             description="Not supported; must be empty.")


class ConfigUpdateRequest(BaseModel):
    """A new compatibility level."""

    compatibility: CompatibilityLevel


class SchemaIdResponse(BaseModel):
    id: int


class SchemaResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    schema_: str = Field(alias="schema")


class SubjectVersionResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    subject: str
    id: int
    version: int
    schema_: str = Field(alias="schema")


class SubjectVersionRef(BaseModel):
    subject: str
    version: int


class ConfigResponse(BaseModel):
    compatibilityLevel: CompatibilityLevel


class CompatibilityResponse(BaseModel):
    is_compatible: bool
    messages: list[str] | None = None


class ErrorResponse(BaseModel):
    error_code: int
    message: str


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        media: {"schema": model.model_json_schema(by_alias=True)}
        for media in (SCHEMA_REGISTRY_JSON, "application/json")
    }}}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse, "description": "Confluent error body"}
            for code in codes}


# ---------------------------------------------------------------------- the app


def create_registry_app(settings: Settings, config: RegistryConfig | None = None) -> FastAPI:
    """The schema registry for ``settings``' log."""
    config = config or RegistryConfig()
    holder: dict[str, SchemaRegistry] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with SchemaRegistry.open(
            settings.kafka_bootstrap_servers, topic=config.topic,
            client_id=settings.service_name, default_level=config.default_compatibility,
        ) as registry:
            holder["registry"] = registry
            try:
                yield
            finally:
                holder.clear()

    app = create_app(
        title="NetScript schema registry",
        description="Confluent's Schema Registry API for Avro; state on the `_schemas` topic.",
        settings=settings, readiness={"log": kafka_ready(settings)}, lifespan=lifespan,
        openapi_tags=[{"name": "subjects"}, {"name": "schemas"}, {"name": "config"},
                      {"name": "compatibility"}],
    )

    def registry() -> SchemaRegistry:
        return holder["registry"]

    _install_error_handlers(app)
    _schema_routes(app, registry)
    _subject_routes(app, registry)
    _config_routes(app, registry)
    return app


def _ok(content: Any, status_code: int = 200) -> RegistryResponse:
    return RegistryResponse(content, status_code=status_code)


def _raw(schema: str) -> Response:
    return Response(schema, media_type=SCHEMA_REGISTRY_JSON)


def _version_body(version: SchemaVersion) -> dict[str, Any]:
    return {"subject": version.subject, "version": version.version, "id": version.schema_id,
            "schema": version.schema}


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        document = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise MalformedRequestError(
            f"the request body is not JSON ({exc}); send a JSON object with Content-Type "
            f"{SCHEMA_REGISTRY_JSON}") from None
    if not isinstance(document, dict):
        raise MalformedRequestError(
            f"the request body must be a JSON object, got {type(document).__name__}; e.g. "
            '{"schema": "{\\"type\\": \\"string\\"}"}')
    return document


async def _schema_text(request: Request) -> str:
    document = await _json_object(request)
    schema_type = document.get("schemaType") or "AVRO"
    if str(schema_type).upper() != "AVRO":
        raise InvalidSchemaError(
            f"Invalid schema: schemaType {schema_type!r} is not supported; this registry "
            "stores AVRO schemas only (leave schemaType out, or send AVRO)")
    if document.get("references"):
        raise InvalidSchemaError(
            "Invalid schema: schema references are not supported; inline the referenced "
            "named types in the schema")
    schema = document.get("schema")
    if not isinstance(schema, str) or not schema.strip():
        raise InvalidSchemaError(
            'Empty schema: send the Avro schema as a JSON string in "schema", e.g. '
            '{"schema": "{\\"type\\": \\"string\\"}"}')
    return schema


def _install_error_handlers(app: FastAPI) -> None:
    async def on_registry_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RegistryApiError)
        return _ok({"error_code": exc.error_code, "message": exc.message}, exc.status)

    async def on_invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        where = "; ".join(
            ".".join(str(part) for part in error.get("loc", ())) + ": " + str(error.get("msg"))
            for error in exc.errors())
        return _ok({"error_code": 422, "message": f"invalid request: {where}"}, 422)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return RegistryResponse({"error_code": exc.status_code, "message": str(exc.detail)},
                                status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(RegistryApiError, on_registry_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


Registry = Callable[[], SchemaRegistry]
"""Returns the open registry (set by the app's lifespan)."""


def _schema_routes(app: FastAPI, registry: Registry) -> None:
    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return _ok({})

    @app.get("/schemas/types", tags=["schemas"], summary="Schema types this registry accepts",
             response_model=list[str], response_class=RegistryResponse)
    async def schema_types() -> Response:
        return _ok(["AVRO"])

    @app.get("/schemas/ids/{schema_id}", tags=["schemas"], summary="A schema by its global id",
             response_model=SchemaResponse, response_class=RegistryResponse,
             responses=_errors(404))
    async def schema_by_id(schema_id: str) -> Response:
        return _ok({"schema": registry().schema(parse_schema_id(schema_id))})

    @app.get("/schemas/ids/{schema_id}/schema", tags=["schemas"],
             summary="A schema by its id, unwrapped", responses=_errors(404))
    async def raw_schema_by_id(schema_id: str) -> Response:
        return _raw(registry().schema(parse_schema_id(schema_id)))

    @app.get("/schemas/ids/{schema_id}/subjects", tags=["schemas"],
             summary="Subjects using a schema", response_model=list[str],
             response_class=RegistryResponse, responses=_errors(404))
    async def subjects_of_id(schema_id: str, deleted: bool = False) -> Response:
        usages = registry().usages(parse_schema_id(schema_id), deleted=deleted)
        return _ok(sorted({version.subject for version in usages}))

    @app.get("/schemas/ids/{schema_id}/versions", tags=["schemas"],
             summary="Subject versions using a schema", response_model=list[SubjectVersionRef],
             response_class=RegistryResponse, responses=_errors(404))
    async def versions_of_id(schema_id: str, deleted: bool = False) -> Response:
        usages = registry().usages(parse_schema_id(schema_id), deleted=deleted)
        return _ok([{"subject": v.subject, "version": v.version} for v in usages])

    @app.get("/mode", include_in_schema=False)
    async def mode() -> Response:
        return _ok({"mode": "READWRITE"})


def _subject_routes(app: FastAPI, registry: Registry) -> None:
    @app.get("/subjects", tags=["subjects"], summary="Subject names",
             response_model=list[str], response_class=RegistryResponse)
    async def subjects(deleted: bool = False,
                       prefix: str = Query("", alias="subjectPrefix")) -> Response:
        return _ok(registry().subjects(deleted=deleted, prefix=prefix))

    @app.post("/subjects/{subject}/versions", tags=["subjects"],
              summary="Register a schema under a subject (the same schema again: same id)",
              response_model=SchemaIdResponse, response_class=RegistryResponse,
              openapi_extra=_body_doc(RegisterSchemaRequest), responses=_errors(409, 422))
    async def register(subject: str, request: Request) -> Response:
        return _ok({"id": await registry().register(subject, await _schema_text(request))})

    @app.post("/subjects/{subject}", tags=["subjects"],
              summary="Find the version of a subject that has this schema",
              response_model=SubjectVersionResponse, response_class=RegistryResponse,
              openapi_extra=_body_doc(RegisterSchemaRequest), responses=_errors(404, 422))
    async def lookup(subject: str, request: Request, deleted: bool = False) -> Response:
        found = registry().lookup(subject, await _schema_text(request), deleted=deleted)
        return _ok(_version_body(found))

    @app.get("/subjects/{subject}/versions", tags=["subjects"],
             summary="Version numbers of a subject", response_model=list[int],
             response_class=RegistryResponse, responses=_errors(404))
    async def versions(subject: str, deleted: bool = False) -> Response:
        return _ok(registry().versions(subject, deleted=deleted))

    @app.get("/subjects/{subject}/versions/{version}", tags=["subjects"],
             summary="One version of a subject (a number, or latest)",
             response_model=SubjectVersionResponse, response_class=RegistryResponse,
             responses=_errors(404, 422))
    async def version(subject: str, version: str, deleted: bool = False) -> Response:
        return _ok(_version_body(registry().version(subject, version, deleted=deleted)))

    @app.get("/subjects/{subject}/versions/{version}/schema", tags=["subjects"],
             summary="The schema of one version, unwrapped", responses=_errors(404, 422))
    async def version_schema(subject: str, version: str, deleted: bool = False) -> Response:
        return _raw(registry().version(subject, version, deleted=deleted).schema)

    @app.get("/subjects/{subject}/versions/{version}/referencedby", tags=["subjects"],
             summary="Ids of schemas referencing this version (references are not supported)",
             response_model=list[int], response_class=RegistryResponse,
             responses=_errors(404, 422))
    async def referenced_by(subject: str, version: str) -> Response:
        registry().version(subject, version)
        return _ok([])

    @app.delete("/subjects/{subject}", tags=["subjects"],
                summary="Soft-delete a subject (permanent=true: forget a soft-deleted one)",
                response_model=list[int], response_class=RegistryResponse,
                responses=_errors(404))
    async def delete_subject(subject: str, permanent: bool = False) -> Response:
        return _ok(await registry().delete_subject(subject, permanent=permanent))

    @app.delete("/subjects/{subject}/versions/{version}", tags=["subjects"],
                summary="Soft-delete a version (permanent=true: forget a soft-deleted one)",
                response_model=int, response_class=RegistryResponse,
                responses=_errors(404, 422))
    async def delete_version(subject: str, version: str, permanent: bool = False) -> Response:
        return _ok(await registry().delete_version(subject, version, permanent=permanent))

    @app.post("/compatibility/subjects/{subject}/versions/{version}", tags=["compatibility"],
              summary="Can this schema join the subject, judged against one version?",
              response_model=CompatibilityResponse, response_class=RegistryResponse,
              openapi_extra=_body_doc(RegisterSchemaRequest), responses=_errors(404, 422))
    async def compatible_with_version(subject: str, version: str, request: Request,
                                      verbose: bool = False) -> Response:
        problems = registry().test_compatibility(subject, await _schema_text(request), version)
        return _ok(_compatibility_body(problems, verbose))

    @app.post("/compatibility/subjects/{subject}/versions", tags=["compatibility"],
              summary="Can this schema join the subject, judged as registering would?",
              response_model=CompatibilityResponse, response_class=RegistryResponse,
              openapi_extra=_body_doc(RegisterSchemaRequest), responses=_errors(422))
    async def compatible_with_subject(subject: str, request: Request,
                                      verbose: bool = False) -> Response:
        problems = registry().test_compatibility(subject, await _schema_text(request))
        return _ok(_compatibility_body(problems, verbose))


def _compatibility_body(problems: list[str], verbose: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"is_compatible": not problems}
    if verbose:
        body["messages"] = problems
    return body


def _config_routes(app: FastAPI, registry: Registry) -> None:
    @app.get("/config", tags=["config"], summary="The global compatibility level",
             response_model=ConfigResponse, response_class=RegistryResponse)
    async def get_global() -> Response:
        return _ok({"compatibilityLevel": registry().compatibility().value})

    @app.put("/config", tags=["config"], summary="Set the global compatibility level",
             response_model=ConfigUpdateRequest, response_class=RegistryResponse,
             openapi_extra=_body_doc(ConfigUpdateRequest), responses=_errors(422))
    async def put_global(request: Request) -> Response:
        level = await registry().set_compatibility(await _level(request))
        return _ok({"compatibility": level.value})

    @app.delete("/config", tags=["config"], summary="Reset the global level to the default",
                response_model=ConfigResponse, response_class=RegistryResponse)
    async def delete_global() -> Response:
        previous = await registry().delete_compatibility()
        return _ok({"compatibilityLevel": previous.value})

    @app.get("/config/{subject}", tags=["config"], summary="A subject's compatibility level",
             response_model=ConfigResponse, response_class=RegistryResponse,
             responses=_errors(404))
    async def get_subject(subject: str,
                          default: bool = Query(False, alias="defaultToGlobal")) -> Response:
        level = registry().subject_compatibility(subject, default_to_global=default)
        return _ok({"compatibilityLevel": level.value})

    @app.put("/config/{subject}", tags=["config"], summary="Set a subject's compatibility level",
             response_model=ConfigUpdateRequest, response_class=RegistryResponse,
             openapi_extra=_body_doc(ConfigUpdateRequest), responses=_errors(422))
    async def put_subject(subject: str, request: Request) -> Response:
        level = await registry().set_compatibility(await _level(request), subject)
        return _ok({"compatibility": level.value})

    @app.delete("/config/{subject}", tags=["config"],
                summary="Remove a subject's level (the global one applies again)",
                response_model=ConfigResponse, response_class=RegistryResponse,
                responses=_errors(404))
    async def delete_subject(subject: str) -> Response:
        previous = await registry().delete_compatibility(subject)
        return _ok({"compatibilityLevel": previous.value})


async def _level(request: Request) -> CompatibilityLevel:
    document = await _json_object(request)
    return CompatibilityLevel.parse(
        document.get("compatibility", document.get("compatibilityLevel")))
