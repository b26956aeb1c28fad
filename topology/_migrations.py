"""``netscript do migrate-db``: the SQL migrations plugins declare, each applied once.

A plugin's :meth:`~topology.BaseContribution.migrations` returns :class:`Migration` values in
order. :func:`apply_migrations` records each one it runs in the ``netscript_migrations`` table
(plugin, name, checksum) in the same transaction as its SQL, so a migration runs exactly once
per database however often the pipeline runs; editing one that has run is an error (add a new
one instead). A session advisory lock keeps two pipelines from migrating the same database at
once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from topology._errors import MigrationError, ProvisionError

TABLE = "netscript_migrations"
# Any fixed 64-bit number: the key of the advisory lock all NetScript migrators take.
_LOCK_KEY = 0x6E65747363726970


@dataclass(frozen=True, kw_only=True, slots=True)
class Migration:
    """One SQL migration of a plugin; ``name`` is unique within the plugin and never reused."""

    name: str
    sql: str
    plugin: str | None = None

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class MigrationResult:
    """Whether one declared migration was applied now (or had been already)."""

    plugin: str
    name: str
    applied: bool


async def apply_migrations(
    database_url: str, migrations: Sequence[Migration]
) -> list[MigrationResult]:
    """Apply each of ``migrations`` not yet recorded in ``netscript_migrations``, in order.

    Raises :class:`ProvisionError` when the database cannot be reached and
    :class:`MigrationError` when a migration fails or was edited after it ran.
    """
    import asyncpg

    try:
        connection = await asyncpg.connect(database_url, timeout=15)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ProvisionError(item="the database", problem=f"cannot connect ({exc}); start "
                             f"Postgres or set DATABASE_URL") from exc
    results: list[MigrationResult] = []
    try:
        await connection.execute("select pg_advisory_lock($1)", _LOCK_KEY)
        await connection.execute(
            f"create table if not exists {TABLE} (plugin text not null, name text not null, "
            f"checksum text not null, applied_at timestamptz not null default now(), "
            f"primary key (plugin, name))")
        rows = await connection.fetch(f"select plugin, name, checksum from {TABLE}")
        applied = {(row["plugin"], row["name"]): row["checksum"] for row in rows}
        for migration in migrations:
            plugin = migration.plugin or "app"
            known = applied.get((plugin, migration.name))
            if known is not None:
                if known != migration.checksum:
                    raise MigrationError(
                        plugin=plugin, migration=migration.name,
                        problem="its SQL changed after it was applied; restore it and add a "
                                "new migration for the change")
                results.append(MigrationResult(plugin=plugin, name=migration.name,
                                                applied=False))
                continue
            try:
                async with connection.transaction():
                    await connection.execute(migration.sql)
                    await connection.execute(
                        f"insert into {TABLE} (plugin, name, checksum) values ($1, $2, $3)",
                        plugin, migration.name, migration.checksum)
            except asyncpg.PostgresError as exc:
                raise MigrationError(plugin=plugin, migration=migration.name,
                                     problem=f"{exc}; fix its SQL and run migrate-db again "
                                             f"(nothing of it was applied)") from exc
            results.append(MigrationResult(plugin=plugin, name=migration.name, applied=True))
    finally:
        await connection.close()
    return results
