"""Every bundled store passes the conformance suite, plus store-specific checks."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from conftest import ALL_STORES, PG_DSN
from runeflow.codec import default_codec
from runeflow.errors import LeaseLostError, StoreError
from runeflow.model.events import Event, FactProduced
from runeflow.model.facts import FactRef
from runeflow.stores import MemoryStore, SQLiteStore, Store, store_from_url
from runeflow.stores.base import INLINE_VALUE_LIMIT, content_hash
from runeflow.testing.store_contract import Corrupter, StoreContract, make_cycle
from test_store_integrity import corrupter_for


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
class TestStoreContract(StoreContract):
    """The shared contract, on memory, SQLite and PostgreSQL."""

    @pytest.fixture
    def corrupt(self, store: Store) -> Corrupter | None:
        """SQL statements of their own damage the SQLite and PostgreSQL stores; a
        MemoryStore has no Corrupter (nothing outside the process reaches its data)."""
        return corrupter_for(store)


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
    from runeflow.stores.postgres import MIGRATIONS, PostgresStore

    assert isinstance(pg_store, PostgresStore)
    with pg_store._connection() as conn:
        conn.execute(f'UPDATE "{pg_store.schema}".schema_version SET version = 99')
    try:
        with pytest.raises(StoreError, match="upgrade runeflow"):
            pg_store.setup()
    finally:
        with pg_store._connection() as conn:
            conn.execute(
                f'UPDATE "{pg_store.schema}".schema_version SET version = %s', (len(MIGRATIONS),)
            )


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


@pytest.mark.parametrize("store", ALL_STORES, indirect=True)
def test_small_values_live_in_the_fact_row_large_ones_once(store: Store) -> None:
    wid = "values"
    store.create(wid, definition_name="n", definition_hash="h")
    before = store.stats()
    small = [make_cycle(i, value=i) for i in range(3)]
    large_value = {"text": "x" * (INLINE_VALUE_LIMIT * 2)}
    large = [make_cycle(10 + i, value=large_value) for i in range(3)]
    for cycle in small + large:
        store.append(wid, cycle)
    store.save_fact("saved-small", "tiny")
    store.save_fact("saved-large", large_value)
    after = store.stats()
    assert after["facts"] - before["facts"] == 8
    assert after["contents"] - before["contents"] == 1  # one distinct large value
    produced = [c[1] for c in small + large]
    for event in produced:
        assert isinstance(event, FactProduced)
        assert store.load_fact(event.fact.id) == event.fact.value
    ids = [e.fact.id for e in produced if isinstance(e, FactProduced)]
    assert store.load_facts([*ids, "saved-small", "saved-large"]) == {
        **dict(zip(ids, [0, 1, 2, large_value, large_value, large_value], strict=True)),
        "saved-small": "tiny",
        "saved-large": large_value,
    }
    refs = [e for e in store.stream(wid, values=False) if isinstance(e, FactProduced)]
    assert all(isinstance(e.fact, FactRef) for e in refs)
    assert list(store.stream(wid)) == [e for c in small + large for e in c]


def _v1_rows(events: list[Event]) -> tuple[bytes, list[tuple[str, str]], dict[str, bytes]]:
    """Encode ``events`` as runeflow 0.1 (schema 1) wrote them: every value by its hash."""
    facts: list[tuple[str, str]] = []
    contents: dict[str, bytes] = {}

    def keep(fact_id: str, value: object) -> None:
        data = default_codec.encode(value)
        facts.append((fact_id, content_hash(data)))
        contents[content_hash(data)] = data

    return default_codec.encode_events(events, fact_sink=keep), facts, contents


def test_sqlite_schema_1_is_migrated_and_stays_readable(tmp_path: Path) -> None:
    from runeflow.stores.sqlite import MIGRATIONS

    path = tmp_path / "old.db"
    events = make_cycle(1, value=7)
    blob, facts, contents = _v1_rows(events)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runeflow_schema (version INTEGER NOT NULL)")
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO runeflow_schema VALUES (1)")
        conn.execute(
            "INSERT INTO runeflow_instances VALUES ('old', 'n', 'h', 'idle', 1.0, 2.0, 3, '{}')"
        )
        conn.execute(
            "INSERT INTO runeflow_events VALUES ('old', 3, 1, ?, ?)", (blob, f'["{facts[0][0]}"]')
        )
        conn.executemany("INSERT INTO runeflow_facts VALUES (?, ?)", facts)
        conn.executemany("INSERT INTO runeflow_contents VALUES (?, ?)", contents.items())
    conn.close()
    with SQLiteStore(path) as store:
        meta = store.get("old")
        assert (meta.cursor, meta.status, meta.updated_at) == (3, "idle", 2.0)
        assert list(store.stream("old")) == events
        assert store.load_fact(facts[0][0]) == 7
        assert store.append("old", make_cycle(2)) == 6
        assert store.get("old").updated_at > 2.0
        assert len(list(store.stream("old"))) == 6
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM runeflow_schema").fetchone() == (len(MIGRATIONS),)
    conn.close()


@pytest.mark.postgres
def test_postgres_schema_1_is_migrated_and_stays_readable(pg_schema: str) -> None:
    import psycopg

    from runeflow.stores.postgres import MIGRATIONS, SCHEMA_VERSION_TABLE, PostgresStore

    schema = f"{pg_schema}_v1"
    events = make_cycle(1, value=7)
    blob, facts, contents = _v1_rows(events)
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        for statement in (SCHEMA_VERSION_TABLE, *MIGRATIONS[0]):
            conn.execute(statement.format(schema=f'"{schema}"'))
        conn.execute(f'INSERT INTO "{schema}".schema_version VALUES (1)')
        conn.execute(
            f"""INSERT INTO "{schema}".instances
            VALUES ('old', 'n', 'h', 'idle', 1.0, 2.0, 3, '{{}}')"""
        )
        conn.execute(
            f"""INSERT INTO "{schema}".events VALUES ('old', 3, 1, %s, %s)""",
            (blob, [facts[0][0]]),
        )
        for fact in facts:
            conn.execute(f'INSERT INTO "{schema}".facts VALUES (%s, %s)', fact)
        for item in contents.items():
            conn.execute(f'INSERT INTO "{schema}".contents VALUES (%s, %s)', item)
    try:
        with PostgresStore(PG_DSN, schema=schema) as store:
            assert store.get("old").cursor == 3
            assert list(store.stream("old")) == events
            assert store.load_fact(facts[0][0]) == 7
            assert store.append("old", make_cycle(2, value=8)) == 6
            assert [e for e in store.stream("old", after=3)][1].fact.value == 8  # type: ignore[attr-defined]
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_sqlite_schema_2_leases_move_into_the_instance_row(tmp_path: Path) -> None:
    from runeflow.stores.sqlite import MIGRATIONS

    path = tmp_path / "v2.db"
    events = make_cycle(1, value=7)
    blob, facts, contents = _v1_rows(events)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runeflow_schema (version INTEGER NOT NULL)")
        for statement in (*MIGRATIONS[0], *MIGRATIONS[1]):
            conn.execute(statement)
        conn.execute("INSERT INTO runeflow_schema VALUES (2)")
        for wid in ("old", "free"):
            conn.execute(
                "INSERT INTO runeflow_instances VALUES (?, 'n', 'h', 'running', 1.0, 2.0, 0, '{}')",
                (wid,),
            )
        conn.execute(
            "INSERT INTO runeflow_leases VALUES ('old', 'old-owner', ?)", (time.time() + 300,)
        )
        conn.execute(
            "INSERT INTO runeflow_events VALUES ('old', 3, 1, ?, ?, 2.0)",
            (blob, f'["{facts[0][0]}"]'),
        )
        conn.executemany("INSERT INTO runeflow_facts (fact_id, hash) VALUES (?, ?)", facts)
        conn.executemany("INSERT INTO runeflow_contents VALUES (?, ?)", contents.items())
    conn.close()
    with SQLiteStore(path) as store:
        assert store.lease_owner("old") == "old-owner"
        meta = store.get("old")
        assert (meta.owner, meta.epoch, meta.cursor, meta.error) == ("old-owner", 1, 3, None)
        assert (store.get("free").owner, store.get("free").epoch) == (None, 0)
        assert store.acquire_lease("old", "new-owner", 30) is None
        assert list(store.stream("old")) == events
        assert store.append("old", make_cycle(2), token=1) == 6
        with pytest.raises(LeaseLostError):
            store.append("old", make_cycle(3), token=2)
        assert len(list(store.stream("old"))) == 6
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM runeflow_schema").fetchone() == (len(MIGRATIONS),)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert "runeflow_leases" not in tables and "runeflow_instances" in tables


@pytest.mark.postgres
def test_postgres_schema_2_leases_move_into_the_instance_row(pg_schema: str) -> None:
    import psycopg

    from runeflow.stores.postgres import MIGRATIONS, SCHEMA_VERSION_TABLE, PostgresStore

    schema = f"{pg_schema}_v2"
    events = make_cycle(1, value=7)
    blob, facts, contents = _v1_rows(events)
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        for statement in (SCHEMA_VERSION_TABLE, *MIGRATIONS[0], *MIGRATIONS[1]):
            conn.execute(statement.format(schema=f'"{schema}"'))
        conn.execute(f'INSERT INTO "{schema}".schema_version VALUES (2)')
        for wid in ("old", "free"):
            conn.execute(
                f"""INSERT INTO "{schema}".instances
                VALUES (%s, 'n', 'h', 'running', 1.0, 2.0, 3, '{{}}')""",
                (wid,),
            )
        conn.execute(
            f"""INSERT INTO "{schema}".leases VALUES ('old', 'old-owner', %s)""",
            (time.time() + 300,),
        )
        conn.execute(
            f"""INSERT INTO "{schema}".events VALUES ('old', 3, 1, %s, %s)""",
            (blob, [facts[0][0]]),
        )
        for fact in facts:
            conn.execute(f'INSERT INTO "{schema}".facts (fact_id, hash) VALUES (%s, %s)', fact)
        for item in contents.items():
            conn.execute(f'INSERT INTO "{schema}".contents VALUES (%s, %s)', item)
    try:
        with PostgresStore(PG_DSN, schema=schema) as store:
            assert store.lease_owner("old") == "old-owner"
            meta = store.get("old")
            assert (meta.owner, meta.epoch, meta.cursor, meta.error) == ("old-owner", 1, 3, None)
            assert (store.get("free").owner, store.get("free").epoch) == (None, 0)
            assert store.acquire_lease("old", "new-owner", 30) is None
            assert list(store.stream("old")) == events
            assert store.append("old", make_cycle(2), token=1) == 6
            with pytest.raises(LeaseLostError):
                store.append("old", make_cycle(3), token=2)
            assert len(list(store.stream("old"))) == 6
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            found = conn.execute(
                "SELECT to_regclass(%s), to_regclass(%s)",
                (f'"{schema}".leases', f'"{schema}".instances'),
            ).fetchone()
            version = conn.execute(f'SELECT version FROM "{schema}".schema_version').fetchone()
        assert found is not None and found[0] is None and found[1] is not None
        assert version == (len(MIGRATIONS),)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_decoding_pauses_the_gc_only_when_it_was_on(tmp_path: Path) -> None:
    import gc

    with SQLiteStore(tmp_path / "gc.db") as store:
        store.create("w", definition_name="n", definition_hash="h")
        for i in range(3):
            store.append("w", make_cycle(i))
        seen: list[bool] = []
        for event in store.stream("w"):  # the consumer runs between chunks, GC restored
            seen.append(gc.isenabled())
            assert isinstance(event, Event)
        assert seen == [True] * 9
        gc.disable()
        try:
            assert len(list(store.stream("w"))) == 9
            assert not gc.isenabled()  # a caller that turned it off keeps it off
        finally:
            gc.enable()
