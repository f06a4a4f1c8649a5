"""Store contents are untrusted: damaged data raises StoreError naming it, never a wrong value.

Here: the Corrupters the contract suite uses on the bundled stores (``corrupter_for``), and
store-specific damage: bits flipped in a real SQLite file, every bit of a row, unreadable
instance and timer rows, files that are no database, foreign Postgres schemas, and the
migration from the schema before checksums.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import runeflow as rf
from conftest import PG_DSN
from runeflow.codec import default_codec
from runeflow.errors import StoreError
from runeflow.model.events import Event, FactProduced, RunnableDispatched
from runeflow.stores import MemoryStore, SQLiteStore, Store, store_from_url
from runeflow.stores.base import Timer, content_hash
from runeflow.stores.integrity import STATUSES
from runeflow.testing.store_contract import make_cycle
from runeflow.testing.store_corruption import Corrupter, Damage

# --- the Corrupters of the bundled stores ---------------------------------------------------

_BAD_INSTANCE: dict[str, dict[str, tuple[str, Any]]] = {
    "sqlite": {  # SQLite is typeless: any value fits any column
        "metadata": ("metadata = ?", '{"definition": "pkg.mod:bu'),
        "status": ("status = ?", 42),
        "timestamp": ("created_at = ?", "yesterday"),
    },
    "postgres": {  # typed columns: only values of the column's type
        "metadata": ("metadata = ?::jsonb", "[1, 2]"),
        "status": ("status = ?", "bogus"),
        "timestamp": ("created_at = ?::float8", "NaN"),
    },
}


class SQLCorrupter:
    """Changes a SQL store's tables with statements of its own (``?`` placeholders)."""

    def __init__(self, kind: str, run: Callable[[str, tuple[Any, ...]], list[Any]]) -> None:
        self.kind = kind
        self._run = run

    def event_row(
        self,
        workflow_id: str,
        cursor: int,
        change: Callable[[bytes], bytes],
        *,
        rechecksum: bool = False,
    ) -> None:
        """See :meth:`Corrupter.event_row`."""
        ((last, data),) = self._run(
            "SELECT last, data FROM {events} WHERE workflow_id = ? AND first <= ? AND last >= ?",
            (workflow_id, cursor, cursor),
        )
        new = change(bytes(data))
        fix = ", checksum = ?" if rechecksum else ""
        params = (new, zlib.crc32(new)) if rechecksum else (new,)
        self._run(
            f"UPDATE {{events}} SET data = ?{fix} WHERE workflow_id = ? AND last = ?",
            (*params, workflow_id, last),
        )

    def drop_event_row(self, workflow_id: str, cursor: int) -> None:
        """See :meth:`Corrupter.drop_event_row`."""
        self._run(
            "DELETE FROM {events} WHERE workflow_id = ? AND first <= ? AND last >= ?",
            (workflow_id, cursor, cursor),
        )

    def fact_value(
        self, fact_id: str, change: Callable[[bytes], bytes], *, rechecksum: bool = False
    ) -> None:
        """See :meth:`Corrupter.fact_value`."""
        ((digest, data),) = self._run(
            "SELECT hash, data FROM {facts} WHERE fact_id = ?", (fact_id,)
        )
        if data is None:  # kept under its content hash
            ((data,),) = self._run("SELECT data FROM {contents} WHERE hash = ?", (digest,))
            self._run(
                "UPDATE {contents} SET data = ? WHERE hash = ?", (change(bytes(data)), digest)
            )
            return
        new = change(bytes(data))
        fix = ", checksum = ?" if rechecksum else ""
        params = (new, zlib.crc32(new)) if rechecksum else (new,)
        self._run(f"UPDATE {{facts}} SET data = ?{fix} WHERE fact_id = ?", (*params, fact_id))

    def snapshot(self, workflow_id: str, change: Callable[[bytes], bytes]) -> None:
        """See :meth:`Corrupter.snapshot`."""
        ((data,),) = self._run("SELECT data FROM {snapshots} WHERE workflow_id = ?", (workflow_id,))
        self._run(
            "UPDATE {snapshots} SET data = ? WHERE workflow_id = ?",
            (change(bytes(data)), workflow_id),
        )

    def instance_row(self, workflow_id: str, damage: Damage) -> bool:
        """See :meth:`Corrupter.instance_row`."""
        assignment, value = _BAD_INSTANCE[self.kind][damage]
        self._run(
            f"UPDATE {{instances}} SET {assignment} WHERE workflow_id = ?", (value, workflow_id)
        )
        return True


def sqlite_corrupter(path: Path) -> SQLCorrupter:
    """A Corrupter of the SQLite database at ``path``, through a connection of its own."""

    def run(statement: str, params: tuple[Any, ...]) -> list[Any]:
        tables = {t: f"runeflow_{t}" for t in ("events", "facts", "contents", "snapshots")}
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            return conn.execute(
                statement.format(**tables, instances="runeflow_instances"), params
            ).fetchall()
        finally:
            conn.close()

    return SQLCorrupter("sqlite", run)


def postgres_corrupter(store: Any) -> SQLCorrupter:
    """A Corrupter of a PostgresStore's schema, through its pool."""

    def run(statement: str, params: tuple[Any, ...]) -> list[Any]:
        names = ("events", "facts", "contents", "snapshots", "instances")
        text = statement.replace("?", "%s").format(**{t: f'"{store.schema}".{t}' for t in names})
        with store._connection() as conn:
            cursor = conn.execute(text, params)
            return cursor.fetchall() if cursor.description else []

    return SQLCorrupter("postgres", run)


def corrupter_for(store: Store) -> Corrupter | None:
    """The Corrupter of a bundled store; ``None`` for a MemoryStore (nothing outside the
    process can reach its data, so it keeps no checksums)."""
    if isinstance(store, SQLiteStore):
        return sqlite_corrupter(store.path)
    if isinstance(store, MemoryStore):
        return None
    return postgres_corrupter(store)


# --- SQLite: flipped bits, in a row and in the file -----------------------------------------


def _store_with_log(path: Path, marker: str = "run-marker-7") -> tuple[SQLiteStore, list[Event]]:
    store = SQLiteStore(path)
    store.create("w", definition_name="n", definition_hash="h")
    events = [*make_cycle(1), *make_cycle(2)]
    events[3] = RunnableDispatched(runnable_id=marker, component="price")
    store.append("w", events[:3])
    store.append("w", events[3:])
    return store, events


def _expect_damage_at(store: Store, cursor: int, good: list[Event], *, values: bool = True) -> str:
    stream = store.stream("w", values=values)
    seen = [next(stream) for _ in range(cursor - 1)]
    if values:
        assert seen == good[: cursor - 1]
    else:  # facts come as references
        assert [type(e) for e in seen] == [type(e) for e in good[: cursor - 1]]
    with pytest.raises(StoreError) as info:
        next(stream)
    assert (info.value.workflow_id, info.value.cursor) == ("w", cursor)
    return str(info.value)


def test_sqlite_every_bit_flipped_in_an_event_row_is_detected(tmp_path: Path) -> None:
    store, events = _store_with_log(tmp_path / "db.sqlite")
    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        ((blob,),) = conn.execute("SELECT data FROM runeflow_events WHERE last = 6").fetchall()
        for offset in range(len(blob)):
            damaged = bytearray(blob)
            damaged[offset] ^= 1 << (offset % 8)
            conn.execute("UPDATE runeflow_events SET data = ? WHERE last = 6", (bytes(damaged),))
            message = _expect_damage_at(store, 4, events, values=offset % 2 == 0)
            assert "event 4 of workflow 'w'" in message
        conn.execute("UPDATE runeflow_events SET data = ? WHERE last = 6", (blob,))
    finally:
        conn.close()
    assert list(store.stream("w")) == events
    store.close()


def _flip_bits_in_file(path: Path, marker: bytes, bits: int, seed: int) -> None:
    """Flip ``bits`` random bits in the bytes around the one place ``marker`` is in the file."""
    data = bytearray(path.read_bytes())
    assert data.count(marker) == 1, "the marker must be in the file once"
    start = data.index(marker)
    rng = random.Random(seed)
    for bit in rng.sample(range(len(marker) * 8), bits):
        data[start + bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data))


def test_sqlite_thirty_bits_flipped_in_the_file_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store, events = _store_with_log(path, marker="run-marker-" + "q" * 40)
    store.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    _flip_bits_in_file(path, b"run-marker-" + b"q" * 40, bits=30, seed=1)
    with SQLiteStore(path) as store:
        assert "corrupt" in _expect_damage_at(store, 4, events)
        assert store.get("w").cursor == 6  # the instance is still listed and inspectable


@pytest.mark.parametrize("size", ["inline", "content"])
def test_sqlite_fact_value_flipped_in_the_file_is_detected(tmp_path: Path, size: str) -> None:
    path = tmp_path / "db.sqlite"
    marker = "value-marker-12345"
    value: Any = marker if size == "inline" else {"text": marker, "pad": "x" * 100}
    with SQLiteStore(path) as store:
        store.create("w", definition_name="n", definition_hash="h")
        events = make_cycle(1, value=value)
        store.append("w", events)
    _flip_bits_in_file(path, marker.encode(), bits=1, seed=2)
    produced = events[1]
    assert isinstance(produced, FactProduced)
    with SQLiteStore(path) as store:
        with pytest.raises(StoreError, match="corrupt") as info:
            store.load_fact(produced.fact.id)
        assert produced.fact.id in str(info.value)
        assert produced.fact.id in _expect_damage_at(store, 1, events)
        assert len(list(store.stream("w", values=False))) == 3


def test_sqlite_a_damaged_page_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store, _ = _store_with_log(path)
    store.close()
    with sqlite3.connect(path) as conn:
        ((root,),) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'runeflow_events'"
        ).fetchall()
        ((page_size,),) = conn.execute("PRAGMA page_size").fetchall()
    conn.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    data[start : start + 16] = b"\xff" * 16  # the page header of the log's table
    path.write_bytes(bytes(data))
    with SQLiteStore(path) as store:
        with pytest.raises(StoreError) as info:
            list(store.stream("w"))
        assert info.value.workflow_id == "w" and info.value.cursor == 1
        message = str(info.value)
        assert f"the SQLite database {path} is damaged" in message and "backup" in message


def test_sqlite_rows_with_bad_positions_or_fact_lists(tmp_path: Path) -> None:
    store, events = _store_with_log(tmp_path / "db.sqlite")
    with sqlite3.connect(store.path) as conn:  # a fact list that is not JSON: values load alone
        conn.execute("UPDATE runeflow_events SET fact_ids = '[not json' WHERE last = 3")
    conn.close()
    assert list(store.stream("w")) == events
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runeflow_events SET first = 'four' WHERE last = 6")
    conn.close()
    assert "positions 'four' to 6" in _expect_damage_at(store, 4, events)
    store.close()


# --- SQLite: unreadable instance and timer rows ---------------------------------------------


def test_sqlite_list_flags_every_unreadable_field(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "db.sqlite") as store:
        for wid in ("a", "bad", "c"):
            store.create(wid, definition_name="n", definition_hash="h", metadata={"k": 1})
        with sqlite3.connect(store.path) as conn:
            conn.execute(
                """UPDATE runeflow_instances SET status = X'FF', created_at = 'yesterday',
                updated_at = X'00', metadata = '[1]', owner = X'07', lease_expires = 'soon',
                epoch = 'x', error = X'01', definition_name = X'05' WHERE workflow_id = 'bad'"""
            )
        conn.close()
        metas = {m.workflow_id: m for m in store.list()}
        assert set(metas) == {"a", "bad", "c"}
        bad = metas["bad"]
        assert bad.error is not None
        for field in ("status", "created_at", "updated_at", "metadata", "owner"):
            assert f"unreadable {field}" in bad.error
        for field in ("lease_expires", "epoch", "error", "definition_name"):
            assert f"unreadable {field}" in bad.error
        assert (bad.metadata, bad.created_at, bad.epoch, bad.owner) == ({}, 0.0, 0, None)
        assert bad.error.startswith("unreadable definition_name: b'\\x05'; unreadable status")
        assert metas["a"].error is None and metas["c"].metadata == {"k": 1}
        with pytest.raises(StoreError, match="cannot read instance 'bad'"):
            store.get("bad")
        assert [m.workflow_id for m in store.list("running")] == ["a", "c"]


def test_sqlite_damaged_positions_and_tokens(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "db.sqlite") as store:
        for wid in ("a", "bad-token", "bad-log"):
            store.create(wid, definition_name="n", definition_hash="h")
            store.append(wid, make_cycle(1))
        with sqlite3.connect(store.path) as conn:
            conn.execute(
                "UPDATE runeflow_instances SET epoch = 'x' WHERE workflow_id = 'bad-token'"
            )
            conn.execute("UPDATE runeflow_events SET last = 'x' WHERE workflow_id = 'bad-log'")
        conn.close()
        with pytest.raises(StoreError, match="cannot lease instance 'bad-token'"):
            store.acquire_lease("bad-token", "me", 30)
        assert sorted(w for w, _ in store.claim("me", 30, limit=10, timers_due=0)) == [
            "a",
            "bad-log",
        ]
        for call in (lambda: store.cursor("bad-log"), lambda: store.append("bad-log", [])):
            with pytest.raises(StoreError, match="its last stored position is 'x'") as info:
                call()
            assert info.value.workflow_id == "bad-log"
        assert store.cursor("a") == 3


def test_sqlite_unreadable_timer_rows(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "db.sqlite") as store:
        store.create("w", definition_name="n", definition_hash="h")
        for k in range(2):
            store.schedule_timer(Timer(timer_id=f"t{k}", workflow_id="w", fire_at=5.0 + k))
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE runeflow_timers SET payload = '{bad' WHERE timer_id = 't0'")
            conn.execute("UPDATE runeflow_timers SET fire_at = 'soon' WHERE timer_id = 't1'")
        conn.close()
        for read in (lambda: store.due_timers(100.0), lambda: store.timers("w")):
            with pytest.raises(StoreError, match="cannot read timer 't0' of workflow 'w'"):
                read()
        assert store.next_timer_at() == 5.0
        assert store.cancel_timer("t0")
        assert store.due_timers(100.0) == []  # a text fire_at is never due
        with pytest.raises(StoreError, match=r"timer 't1'.*unreadable fire_at"):
            store.timers("w")
        assert store.next_timer_at() is None


# --- SQLite: paths that are no database -----------------------------------------------------


def test_a_file_that_is_not_sqlite_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database, just some text\n" * 200)
    for open_it in (lambda: rf.SQLiteStore(path), lambda: store_from_url(f"sqlite:///{path}")):
        with pytest.raises(StoreError) as info:
            open_it()
        assert str(path) in str(info.value) and "is not a SQLite database" in str(info.value)
        assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    store = rf.SQLiteStore(path, auto_setup=False)  # and on first use when not set up
    with pytest.raises(StoreError, match="is not a SQLite database"):
        store.list()
    store.close()
    assert path.read_bytes().startswith(b"this is not a database")  # left as it was


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("directory", "it is a directory"),
        ("missing/db.sqlite", "does not exist; create it first"),
        ("a-file/db.sqlite", "is not a directory"),
    ],
)
def test_a_path_that_cannot_be_opened_is_a_store_error(
    tmp_path: Path, where: str, says: str
) -> None:
    (tmp_path / "directory").mkdir()
    (tmp_path / "a-file").write_text("x")
    path = tmp_path / where
    with pytest.raises(StoreError) as info:
        rf.SQLiteStore(path)
    assert str(path) in str(info.value) and says in str(info.value)


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` read-only: ``chmod`` for a user, ``chattr +i`` for root (whom
    permissions do not stop); skip, saying why, where neither works."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    done = (
        subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if shutil.which("chattr")
        else None
    )
    if done is None or done.returncode != 0:
        why = "chattr is not installed" if done is None else done.stderr.strip()
        pytest.skip(f"running as root, and cannot make {path} immutable: {why}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_database_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    with SQLiteStore(path) as store:
        store.create("w", definition_name="n", definition_hash="h")
    with read_only(path), SQLiteStore(path) as store:
        assert [m.workflow_id for m in store.list()] == ["w"]  # e.g. `runeflow list` on a copy
        with pytest.raises(StoreError) as info:
            store.create("v", definition_name="n", definition_hash="h")
    assert str(path) in str(info.value) and "read-only" in str(info.value)


def test_a_read_only_directory_is_a_store_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder), pytest.raises(StoreError) as info:
        SQLiteStore(folder / "db.sqlite")
    assert str(folder / "db.sqlite") in str(info.value)
    assert f"the directory {folder} is not writable" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: none can be unreadable")
def test_an_unreadable_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    SQLiteStore(path).close()
    path.chmod(0)
    try:
        with pytest.raises(StoreError) as info:
            SQLiteStore(path)
    finally:
        path.chmod(0o644)
    assert str(path) in str(info.value) and "may not read and write it" in str(info.value)


def test_sqlite_tables_of_another_program_are_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runeflow_instances (id INTEGER)")
    conn.close()
    with pytest.raises(StoreError, match="tables runeflow did not make") as info:
        SQLiteStore(path)
    assert str(path) in str(info.value)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE runeflow_instances")
        conn.execute("CREATE TABLE runeflow_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO runeflow_schema VALUES ('four')")
    conn.close()
    with pytest.raises(StoreError, match="version 'four', which runeflow never writes"):
        SQLiteStore(path)


def test_runeflow_list_shows_damaged_instances_flagged(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    with SQLiteStore(path) as store:
        for wid in ("a", "bad-meta", "bad-log"):
            store.create(wid, definition_name="n", definition_hash="h")
            store.append(wid, make_cycle(1))
    corrupter = sqlite_corrupter(path)
    corrupter.instance_row("bad-meta", "metadata")
    corrupter.event_row("bad-log", 2, lambda b: b.replace(b"run-", b"sun-"))
    out = subprocess.run(
        [sys.executable, "-m", "runeflow", "list", f"--store=sqlite:///{path}", "--format=json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    items = {item["id"]: item for item in json.loads(out.stdout)}
    assert items["a"]["error"] is None
    assert items["bad-meta"]["error"].startswith("unreadable metadata: ")
    assert "cannot read event 1 of workflow 'bad-log'" in items["bad-log"]["error"]
    assert "corrupt" in items["bad-log"]["error"]


def test_statuses_are_the_runner_statuses() -> None:
    assert {s.value for s in rf.Status} == STATUSES


# --- from the schema before checksums (version 3) -------------------------------------------


def _v3_rows(
    events: list[Event],
) -> tuple[bytes, dict[str, bytes], dict[str, str], dict[str, bytes]]:
    """``events`` as schema 3 stores them: the blob, inline values, hashes, contents."""
    inline: dict[str, bytes] = {}
    hashes: dict[str, str] = {}
    contents: dict[str, bytes] = {}

    def keep(fact_id: str, value: object) -> None:
        data = default_codec.encode(value)
        if len(data) <= 64:
            inline[fact_id] = data
        else:
            hashes[fact_id] = content_hash(data)
            contents[content_hash(data)] = data

    return default_codec.encode_events(events, fact_sink=keep), inline, hashes, contents


LARGE = {"text": "large value " * 10}


def _old_log() -> list[Event]:
    return [*make_cycle(1, value=7), *make_cycle(2, value=LARGE)]


def _check_migrated(
    store: Store, events: list[Event], raw: Callable[[str], list[Any]], damage: Corrupter
) -> None:
    """What a store opened on a schema-3 database must do: read the old rows unverified,
    checksum every new one, and still check old content rows against their hash."""
    assert list(store.stream("old")) == events
    assert store.load_snapshot("old") == (6, b"old snapshot")
    produced = [e for e in events if isinstance(e, FactProduced)]
    assert store.load_facts([e.fact.id for e in produced]) == {
        e.fact.id: e.fact.value for e in produced
    }
    assert store.append("old", make_cycle(3, value=9)) == 9
    store.save_fact("new-inline", 1)
    store.save_snapshot("old", 9, b"new snapshot")
    assert raw("SELECT last, checksum IS NULL FROM {events} ORDER BY last") == [
        (6, True),
        (9, False),
    ]
    (((blob, crc),)) = raw("SELECT data, checksum FROM {events} WHERE last = 9")
    assert zlib.crc32(bytes(blob)) == crc
    (((data, crc),)) = raw("SELECT data, checksum FROM {facts} WHERE fact_id = 'new-inline'")
    assert zlib.crc32(bytes(data)) == crc
    (((data, crc),)) = raw("SELECT data, checksum FROM {snapshots}")
    assert (bytes(data), crc) == (b"new snapshot", zlib.crc32(b"new snapshot"))
    assert len(list(store.stream("old"))) == 9
    damage.fact_value(produced[1].fact.id, lambda b: b.replace(b"large", b"LARGE"))
    with pytest.raises(StoreError, match="corrupt"):  # an old content row: checked by its hash
        store.load_fact(produced[1].fact.id)


def test_sqlite_schema_3_is_migrated_to_checksums(tmp_path: Path) -> None:
    from runeflow.stores.sqlite import MIGRATIONS

    path = tmp_path / "v3.db"
    events = _old_log()
    blob, inline, hashes, contents = _v3_rows(events)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runeflow_schema (version INTEGER NOT NULL)")
        for statement in (s for migration in MIGRATIONS[:3] for s in migration):
            conn.execute(statement)
        conn.execute("INSERT INTO runeflow_schema VALUES (3)")
        conn.execute(
            """INSERT INTO runeflow_instances (workflow_id, definition_name, definition_hash,
            status, created_at, updated_at, metadata)
            VALUES ('old', 'n', 'h', 'idle', 1, 2, '{}')"""
        )
        conn.execute(
            "INSERT INTO runeflow_events VALUES ('old', 6, 1, ?, ?, 2.0)",
            (blob, json.dumps([*inline, *hashes])),
        )
        conn.executemany("INSERT INTO runeflow_facts VALUES (?, '', ?)", inline.items())
        conn.executemany("INSERT INTO runeflow_facts VALUES (?, ?, NULL)", hashes.items())
        conn.executemany("INSERT INTO runeflow_contents VALUES (?, ?)", contents.items())
        conn.execute("INSERT INTO runeflow_snapshots VALUES ('old', 6, ?)", (b"old snapshot",))
    conn.close()

    def raw(statement: str) -> list[Any]:
        tables = {t: f"runeflow_{t}" for t in ("events", "facts", "contents", "snapshots")}
        with sqlite3.connect(path) as conn:
            rows = conn.execute(statement.format(**tables)).fetchall()
        conn.close()
        return rows

    with SQLiteStore(path) as store:
        _check_migrated(store, events, raw, sqlite_corrupter(path))
    assert raw("SELECT version FROM runeflow_schema") == [(len(MIGRATIONS),)]
    assert len(MIGRATIONS) >= 4  # checksums are migration 4


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def pg_raw(pg_schema: str) -> Iterator[Callable[[str, str], Any]]:
    """Run SQL in a scratch schema (``{schema}`` in the statement); dropped afterwards."""
    import psycopg

    made: list[str] = []

    def run(schema_suffix: str, statement: str) -> Any:
        schema = f"{pg_schema}_{schema_suffix}"
        if schema not in made:
            made.append(schema)
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            cursor = conn.execute(statement.format(schema=f'"{schema}"'))
            return cursor.fetchall() if cursor.description else None

    yield run
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for schema in made:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.postgres
def test_postgres_a_byte_flipped_by_sql_is_detected(pg_store: Store) -> None:
    schema = pg_store.schema  # type: ignore[attr-defined]
    pg_store.create("w", definition_name="n", definition_hash="h")
    events = [*make_cycle(1, value=7), *make_cycle(2, value=LARGE), *make_cycle(3, value=8)]
    for start in (0, 3, 6):
        pg_store.append("w", events[start : start + 3])
    with pg_store._connection() as conn:  # type: ignore[attr-defined]
        conn.execute(
            f'UPDATE "{schema}".events SET data = set_byte(data, 20, get_byte(data, 20) # 1)'
            " WHERE last = 6"
        )
    assert "checksum" in _expect_damage_at(pg_store, 4, events)
    with pg_store._connection() as conn:  # type: ignore[attr-defined]
        conn.execute(f'UPDATE "{schema}".events SET data = %s WHERE last = 6', (b"x",))
        conn.execute(
            f'UPDATE "{schema}".facts SET data = set_byte(data, 0, get_byte(data, 0) # 1)'
            " WHERE data IS NOT NULL"
        )
        conn.execute(
            f'UPDATE "{schema}".contents SET data = set_byte(data, 5, get_byte(data, 5) # 1)'
        )
    produced = [e for e in events if isinstance(e, FactProduced)]
    for fact in (produced[0].fact, produced[1].fact):
        with pytest.raises(StoreError, match="corrupt") as info:
            pg_store.load_fact(fact.id)
        assert fact.id in str(info.value)
    assert produced[0].fact.id in _expect_damage_at(pg_store, 1, events)
    assert "checksum" in _expect_damage_at(pg_store, 4, events, values=False)


@pytest.mark.postgres
def test_postgres_a_schema_of_another_program_is_a_store_error(
    pg_raw: Callable[[str, str], Any], pg_schema: str
) -> None:
    pg_raw("foreign", "CREATE SCHEMA {schema}")
    pg_raw("foreign", "CREATE TABLE {schema}.instances (id INTEGER)")
    with pytest.raises(StoreError, match="not as this runeflow made them"):
        rf.PostgresStore(PG_DSN, schema=f"{pg_schema}_foreign")
    pg_raw("oddversion", "CREATE SCHEMA {schema}")
    pg_raw("oddversion", "CREATE TABLE {schema}.schema_version (v TEXT)")
    with pytest.raises(StoreError, match="not as this runeflow made them"):
        rf.PostgresStore(PG_DSN, schema=f"{pg_schema}_oddversion")
    pg_raw("negative", "CREATE SCHEMA {schema}")
    pg_raw("negative", "CREATE TABLE {schema}.schema_version (version INTEGER NOT NULL)")
    pg_raw("negative", "INSERT INTO {schema}.schema_version VALUES (-1)")
    with pytest.raises(StoreError, match="version -1, which runeflow never writes"):
        rf.PostgresStore(PG_DSN, schema=f"{pg_schema}_negative")


@pytest.mark.postgres
def test_postgres_schema_3_is_migrated_to_checksums(
    pg_raw: Callable[[str, str], Any], pg_schema: str
) -> None:
    import psycopg

    from runeflow.stores.postgres import MIGRATIONS, SCHEMA_VERSION_TABLE, PostgresStore

    schema = f"{pg_schema}_v3"
    events = _old_log()
    blob, inline, hashes, contents = _v3_rows(events)
    pg_raw("v3", "CREATE SCHEMA {schema}")
    for statement in (SCHEMA_VERSION_TABLE, *(s for m in MIGRATIONS[:3] for s in m)):
        pg_raw("v3", statement)
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'INSERT INTO "{schema}".schema_version VALUES (3)')
        conn.execute(
            f"""INSERT INTO "{schema}".instances (workflow_id, definition_name,
            definition_hash, status, created_at, updated_at, cursor, metadata)
            VALUES ('old', 'n', 'h', 'idle', 1, 2, 6, '{{}}')"""
        )
        conn.execute(
            f"""INSERT INTO "{schema}".events VALUES ('old', 6, 1, %s, %s)""",
            (blob, [*inline, *hashes]),
        )
        for fact_id, data in inline.items():
            conn.execute(f"""INSERT INTO "{schema}".facts VALUES (%s, '', %s)""", (fact_id, data))
        for fact_id, digest in hashes.items():
            conn.execute(f'INSERT INTO "{schema}".facts VALUES (%s, %s, NULL)', (fact_id, digest))
        for item in contents.items():
            conn.execute(f'INSERT INTO "{schema}".contents VALUES (%s, %s)', item)
        conn.execute(f"""INSERT INTO "{schema}".snapshots VALUES ('old', 6, 'old snapshot')""")

    def raw(statement: str) -> list[Any]:
        rows: list[Any] = (
            pg_raw(
                "v3",
                statement.format(
                    **{t: "{schema}." + t for t in ("events", "facts", "contents", "snapshots")}
                ),
            )
            or []
        )
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]

    with PostgresStore(PG_DSN, schema=schema) as store:
        _check_migrated(store, events, raw, postgres_corrupter(store))
    assert pg_raw("v3", "SELECT version FROM {schema}.schema_version") == [(len(MIGRATIONS),)]
