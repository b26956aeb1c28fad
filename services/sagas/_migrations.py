"""The ``saga_runtime_*`` tables of the ``postgres`` store: SQL files applied once each.

:func:`apply_migrations` runs every file of ``services/sagas/migrations/`` not yet recorded in
``saga_runtime_migrations``, in name order, each in the transaction that records it. A
transaction-level advisory lock (per schema) makes concurrent runners take turns: the second
finds the first's records and applies nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

from services.sagas._errors import SagaRuntimeError
from services.sagas._outbox import POSTGRES_ERRORS

TABLE = "saga_runtime_migrations"
# Any fixed 32-bit number; the lock's second half is the schema, so two schemas of one
# database migrate independently.
_LOCK_KEY = 0x5A6A1001


@dataclass(frozen=True, kw_only=True, slots=True)
class SagaMigration:
    """One SQL file of the saga runtime; ``name`` is its file name, never reused."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def saga_migrations() -> tuple[SagaMigration, ...]:
    """The runtime's migrations, in the order they apply."""
    folder = resources.files("services.sagas") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")),
                   key=lambda f: f.name)
    return tuple(SagaMigration(name=f.name, sql=f.read_text(encoding="utf-8")) for f in files)


async def apply_migrations(pool: asyncpg.Pool) -> list[str]:
    """Create or update the ``saga_runtime_*`` tables in the pool's current schema.

    Returns the names of the migrations applied now (empty when all had been). Raises
    :class:`SagaRuntimeError` when one fails or was edited after it ran.
    """
    applied: list[str] = []
    try:
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute("select pg_advisory_xact_lock($1, hashtext(current_schema()))",
                                     _LOCK_KEY)
            await connection.execute(
                f"create table if not exists {TABLE} (name text primary key, checksum text not "
                "null, applied_at timestamptz not null default now())")
            done = {r["name"]: r["checksum"]
                    for r in await connection.fetch(f"select name, checksum from {TABLE}")}
            for migration in saga_migrations():
                known = done.get(migration.name)
                if known == migration.checksum:
                    continue
                if known is not None:
                    raise SagaRuntimeError(
                        f"saga migration {migration.name} changed after it was applied; "
                        "restore it and add a new migration file for the change")
                await connection.execute(migration.sql)
                await connection.execute(f"insert into {TABLE} (name, checksum) values ($1, $2)",
                                         migration.name, migration.checksum)
                applied.append(migration.name)
    except POSTGRES_ERRORS as exc:
        raise SagaRuntimeError(f"cannot migrate the saga runtime tables: {exc}; check the "
                               "database is reachable and the role may create tables") from exc
    return applied
