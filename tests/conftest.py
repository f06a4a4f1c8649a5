"""Store fixtures: ``store`` is parametrised (indirectly) over memory, SQLite and PostgreSQL.

PostgreSQL tests use the server at ``postgresql://postgres@127.0.0.1:5432/test`` (or
``RUNEFLOW_TEST_PG_DSN``), in a schema made for this test session and dropped at its end.
When the server cannot be reached they are skipped with the reason, or fail under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runeflow.stores import MemoryStore, SQLiteStore, Store

PG_DSN = os.environ.get("RUNEFLOW_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

ALL_STORES = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
]
"""Use as ``@pytest.mark.parametrize("store", ALL_STORES, indirect=True)``."""


def _pg_unavailable(reason: str) -> None:
    message = f"PostgreSQL not reachable at {PG_DSN}: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A fresh schema for this session (dropped at the end); skips if no server."""
    try:
        import psycopg
    except ImportError as exc:
        _pg_unavailable(f"psycopg is not installed ({exc})")
    schema = f"rf_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _pg_unavailable(str(exc).strip())
    yield schema
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_store(pg_schema: str) -> Iterator[Store]:
    """A PostgresStore on the session schema, emptied before the test."""
    from runeflow.stores.postgres import TABLES, PostgresStore

    store = PostgresStore(PG_DSN, schema=pg_schema)
    with store._connection() as conn:
        tables = ", ".join(f'"{pg_schema}".{table}' for table in TABLES)
        conn.execute(f"TRUNCATE {tables}")
    yield store
    store.close()


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Open a fresh store of ``kind`` (``memory``, ``sqlite`` or ``postgres``)."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "runeflow.db")
    if kind == "postgres":
        store: Store = request.getfixturevalue("pg_store")
        return store
    raise ValueError(f"unknown store kind {kind!r}")


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store; parametrise it indirectly with ``ALL_STORES`` (default: memory)."""
    kind: Any = getattr(request, "param", "memory")
    store = make_store(kind, request, tmp_path)
    yield store
    store.close()
