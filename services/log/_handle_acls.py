"""Handlers of CreateAcls, DescribeAcls and DeleteAcls; bindings live in ``AclStore``.

Version 0 of each API has no pattern type: its bindings and filters are LITERAL, as in Kafka.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from services.log._acls import AclBinding, AclFilter, PatternType
from services.log._codec import Fields
from services.log._errors import ErrorCode, KafkaError
from services.log._server import RequestContext

if TYPE_CHECKING:
    from services.log._broker import Broker


def _filter(spec: Fields) -> AclFilter:
    return AclFilter(
        resource_type=spec["resource_type"],
        resource_name=spec["resource_name"],
        pattern_type=spec.get("resource_pattern_type_filter", PatternType.LITERAL),
        principal=spec["principal"],
        host=spec["host"],
        operation=spec["operation"],
        permission_type=spec["permission_type"],
    )


def _acl_fields(acl: AclBinding) -> Fields:
    return {
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "resource_type": acl.resource_type,
        "resource_name": acl.resource_name,
        "resource_pattern_type": acl.pattern_type,
        "principal": acl.principal,
        "host": acl.host,
        "operation": acl.operation,
        "permission_type": acl.permission_type,
    }


async def create_acls(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    results: list[Fields] = []
    valid: list[AclBinding] = []
    for spec in req["creations"]:
        result: Fields = {"error_code": ErrorCode.NONE, "error_message": None}
        try:
            if spec["principal"] is None or spec["host"] is None:
                raise KafkaError(ErrorCode.INVALID_REQUEST, "principal and host must not be null")
            acl = AclBinding(
                resource_type=spec["resource_type"],
                resource_name=spec["resource_name"] or "",
                pattern_type=spec.get("resource_pattern_type", PatternType.LITERAL),
                principal=spec["principal"],
                host=spec["host"],
                operation=spec["operation"],
                permission_type=spec["permission_type"],
            )
            acl.validate()
            valid.append(acl)
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message)
        results.append(result)
    broker.acls.create(valid)
    return {"throttle_time_ms": 0, "creation_responses": results}


async def describe_acls(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    acl_filter = _filter(req)
    try:
        acl_filter.validate()
    except KafkaError as exc:
        return {"throttle_time_ms": 0, "error_code": exc.code, "error_message": exc.message}
    resources = []
    acls = broker.acls.describe(acl_filter)  # sorted, so each pattern's bindings are adjacent
    for (kind, name, pattern), same in itertools.groupby(
        acls, key=lambda a: (a.resource_type, a.resource_name, a.pattern_type)
    ):
        resources.append(
            {
                "resource_type": kind,
                "resource_name": name,
                "resource_pattern_type": pattern,
                "acls": [
                    {
                        "principal": a.principal,
                        "host": a.host,
                        "operation": a.operation,
                        "permission_type": a.permission_type,
                    }
                    for a in same
                ],
            }
        )
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "resources": resources,
    }


async def delete_acls(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    filters = [_filter(spec) for spec in req["filters"]]
    errors: dict[int, KafkaError] = {}
    for index, acl_filter in enumerate(filters):
        try:
            acl_filter.validate()
        except KafkaError as exc:
            errors[index] = exc
    valid = [f for i, f in enumerate(filters) if i not in errors]
    matched = iter(broker.acls.delete(valid))
    responses = []
    for index in range(len(filters)):
        error = errors.get(index)
        if error is not None:
            responses.append({"error_code": error.code, "error_message": error.message})
            continue
        responses.append(
            {
                "error_code": ErrorCode.NONE,
                "error_message": None,
                "matching_acls": [_acl_fields(acl) for acl in next(matched)],
            }
        )
    return {"throttle_time_ms": 0, "filter_responses": responses}
