"""Handlers of DescribeUserScramCredentials and AlterUserScramCredentials (``ScramStore``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.log._codec import Fields
from services.log._errors import ErrorCode
from services.log._scram import Deletion, Upsertion
from services.log._server import RequestContext

if TYPE_CHECKING:
    from services.log._broker import Broker


async def describe_user_scram_credentials(
    broker: Broker, ctx: RequestContext, req: Fields
) -> Fields:
    users = req["users"]
    results = broker.scram.describe(None if users is None else [u["name"] for u in users])
    return {
        "throttle_time_ms": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "results": [
            {
                "user": r.user,
                "error_code": r.error,
                "error_message": r.message,
                "credential_infos": [
                    {"mechanism": mechanism, "iterations": iterations, "tags": {}}
                    for mechanism, iterations in r.credentials
                ],
                "tags": {},
            }
            for r in results
        ],
        "tags": {},
    }


async def alter_user_scram_credentials(broker: Broker, ctx: RequestContext, req: Fields) -> Fields:
    results = broker.scram.alter(
        [Deletion(d["name"] or "", d["mechanism"]) for d in req["deletions"]],
        [
            Upsertion(
                user=u["name"] or "",
                mechanism=u["mechanism"],
                iterations=u["iterations"],
                salt=u["salt"] or b"",
                salted_password=u["salted_password"] or b"",
            )
            for u in req["upsertions"]
        ],
    )
    return {
        "throttle_time_ms": 0,
        "results": [
            {"user": r.user, "error_code": r.error, "error_message": r.message, "tags": {}}
            for r in results
        ],
        "tags": {},
    }
