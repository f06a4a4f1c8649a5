"""Every bundled store passes the conformance suite, plus store-specific checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import ALL_STORES, PG_DSN
from runeflow.errors import StoreError
from runeflow.stores import MemoryStore, SQLiteStore, Store, store_from_url
from runeflow.testing.store_contract import StoreContract, make_cycle


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
class TestStoreContract(StoreContract):
    """The shared contract, on memory, SQLite and PostgreSQL."""


def test_capabilities_are_declared() -> None:
    assert not MemoryStore.capabilities.durable
    assert SQLiteStore.capabilities.durable and SQLiteStore.capabilities.multi_process


def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runeflow_schema SET version = 99")
    with pytest.raises(StoreError, match="upgrade runeflow"):
        SQLiteStore(path)


def test_sqlite_setup_is_idempotent_and_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    with SQLiteStore(path) as store:
        store.setup()
        store.create("w", definition_name="n", definition_hash="h")
        events = make_cycle(1)
        store.append("w", events)
    with SQLiteStore(path, synchronous="FULL") as store:
        assert list(store.stream("w")) == events


def test_sqlite_rejects_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path / "x.db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="MemoryStore"):
        SQLiteStore(":memory:")


@pytest.mark.postgres
def test_postgres_newer_schema_is_refused(pg_store: Store) -> None:
    from runeflow.stores.postgres import PostgresStore

    assert isinstance(pg_store, PostgresStore)
    with pg_store._connection() as conn:
        conn.execute(f'UPDATE "{pg_store.schema}".schema_version SET version = 99')
    try:
        with pytest.raises(StoreError, match="upgrade runeflow"):
            pg_store.setup()
    finally:
        with pg_store._connection() as conn:
            conn.execute(f'UPDATE "{pg_store.schema}".schema_version SET version = 1')


def test_postgres_rejects_bad_schema_name() -> None:
    from runeflow.stores.postgres import PostgresStore

    with pytest.raises(ValueError, match="identifier"):
        PostgresStore(PG_DSN, schema='x"; DROP TABLE y; --')


def test_store_from_url(tmp_path: Path) -> None:
    assert isinstance(store_from_url("memory://"), MemoryStore)
    store = store_from_url(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "a.db"
    store.close()


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://", "memory://x", "nonsense", ""])
def test_store_from_bad_url(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        store_from_url(url)
