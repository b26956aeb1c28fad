"""Fixtures of the saga tests: a fresh schema on the real Postgres per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.sagas._support import POSTGRES


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """DATABASE_URL of a fresh schema on the real Postgres, dropped after the test."""
    schema = f"sagas_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(f"create schema {schema}")
        yield f"{POSTGRES}?search_path={schema}"
    finally:
        await connection.execute(f"drop schema if exists {schema} cascade")
        await connection.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's schema."""
    async with asyncpg.create_pool(database_url, min_size=1, max_size=8) as opened:
        yield opened
