"""The embedded durable store: one SQLite file, stdlib :mod:`sqlite3`, WAL mode.

Each thread gets its own connection; several threads and several processes may share one
file. Writes take the write lock up front (``BEGIN IMMEDIATE``) and a busy database is
waited for (``busy_timeout`` plus a retry loop with backoff), never reported as an error.

Durability: with ``synchronous="NORMAL"`` (the default, in WAL mode) a committed append
survives the process being killed at any point; the last commits may be lost if the whole
machine loses power. ``synchronous="FULL"`` also survives power loss, at a cost per append.
"""

from __future__ import annotations

import builtins
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from runeflow.codec import Codec
from runeflow.errors import LeaseLostError, StoreError, StoreUnavailableError, WorkflowNotFoundError
from runeflow.model.events import Event
from runeflow.stores.base import (
    Capabilities,
    EncodedAppend,
    InstanceMeta,
    Store,
    Timer,
    _log_chunks,
    content_key,
    json_text,
)

__all__ = ["MIGRATIONS", "SQLiteStore"]

T = TypeVar("T")

SCHEMA_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS runeflow_schema (version INTEGER NOT NULL)"

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE runeflow_instances (
            workflow_id TEXT PRIMARY KEY,
            definition_name TEXT NOT NULL,
            definition_hash TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            cursor INTEGER NOT NULL DEFAULT 0,
            metadata TEXT NOT NULL DEFAULT '{}')""",
        "CREATE INDEX runeflow_instances_status ON runeflow_instances (status)",
        """CREATE TABLE runeflow_events (
            workflow_id TEXT NOT NULL,
            last INTEGER NOT NULL,
            first INTEGER NOT NULL,
            data BLOB NOT NULL,
            fact_ids TEXT,
            PRIMARY KEY (workflow_id, last))""",
        "CREATE TABLE runeflow_contents (hash TEXT PRIMARY KEY, data BLOB NOT NULL)",
        """CREATE TABLE runeflow_facts (
            fact_id TEXT PRIMARY KEY, hash TEXT NOT NULL) WITHOUT ROWID""",
        """CREATE TABLE runeflow_snapshots (
            workflow_id TEXT PRIMARY KEY, cursor INTEGER NOT NULL, data BLOB NOT NULL)""",
        """CREATE TABLE runeflow_timers (
            timer_id TEXT PRIMARY KEY,
            workflow_id TEXT NOT NULL,
            fire_at REAL NOT NULL,
            payload TEXT NOT NULL)""",
        "CREATE INDEX runeflow_timers_fire_at ON runeflow_timers (fire_at)",
        "CREATE INDEX runeflow_timers_workflow ON runeflow_timers (workflow_id, fire_at)",
        """CREATE TABLE runeflow_leases (
            workflow_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL)""",
    ),
    # 2: an append writes its log row (and fact rows) only. The cursor is the log's last
    # position and ``updated_at`` the later of the instance row's and the last row's time,
    # so the instance row changes only with the status; its ``cursor`` column is no longer
    # kept up to date (it stays for SQLite builds without DROP COLUMN). Values no longer
    # than their hash live in the fact's row (``hash = ''``) rather than in runeflow_contents.
    (
        "ALTER TABLE runeflow_events ADD COLUMN at REAL",
        "ALTER TABLE runeflow_facts ADD COLUMN data BLOB",
    ),
    # 3: the lease moves into the instance row, with a fencing token (``epoch``) that an
    # append checks under the write lock; ``error`` says why a runner could not load it.
    (
        "ALTER TABLE runeflow_instances ADD COLUMN owner TEXT",
        "ALTER TABLE runeflow_instances ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runeflow_instances ADD COLUMN lease_expires REAL NOT NULL DEFAULT 0",
        "ALTER TABLE runeflow_instances ADD COLUMN error TEXT",
        """UPDATE runeflow_instances SET
            owner = (SELECT l.owner FROM runeflow_leases l
                WHERE l.workflow_id = runeflow_instances.workflow_id),
            lease_expires = (SELECT l.expires_at FROM runeflow_leases l
                WHERE l.workflow_id = runeflow_instances.workflow_id),
            epoch = 1
            WHERE workflow_id IN (SELECT workflow_id FROM runeflow_leases)""",
        "DROP TABLE runeflow_leases",
        "CREATE INDEX runeflow_instances_lease ON runeflow_instances (lease_expires)",
    ),
]
"""Schema migrations in order; ``runeflow_schema.version`` counts those applied."""

INSERT_INSTANCE = """INSERT OR IGNORE INTO runeflow_instances
    (workflow_id, definition_name, definition_hash, status, created_at, updated_at, cursor,
    metadata, owner, epoch, lease_expires) VALUES (?,?,?,?,?,?,0,?,?,?,?)"""
_LAST_ROW = """(SELECT MAX(last) FROM runeflow_events WHERE workflow_id = i.workflow_id)"""
_SELECT_META = f"""SELECT i.workflow_id, i.definition_name, i.definition_hash, i.status,
    i.created_at, MAX(i.updated_at, COALESCE(e.at, 0)), COALESCE(e.last, 0), i.metadata,
    i.owner, i.lease_expires, i.epoch, i.error
    FROM runeflow_instances i LEFT JOIN runeflow_events e
    ON e.workflow_id = i.workflow_id AND e.last = {_LAST_ROW}"""
SELECT_INSTANCE = f"{_SELECT_META} WHERE i.workflow_id = ?"
SELECT_INSTANCES = f"{_SELECT_META} ORDER BY i.created_at, i.workflow_id"
SELECT_CURSOR = f"""SELECT COALESCE({_LAST_ROW}, 0), i.epoch FROM runeflow_instances i
    WHERE i.workflow_id = ?"""
SET_ERROR = "UPDATE runeflow_instances SET error = ? WHERE workflow_id = ?"
CHANGE_STATUS = """UPDATE runeflow_instances SET status = ?, updated_at = ?
    WHERE workflow_id = ? AND status IS NOT ?"""
UPDATE_STATUS = "UPDATE runeflow_instances SET status = ?, updated_at = ? WHERE workflow_id = ?"
INSERT_EVENTS = """INSERT INTO runeflow_events (workflow_id, last, first, data, fact_ids, at)
    VALUES (?,?,?,?,?,?)"""
SELECT_EVENTS = """SELECT first, data, fact_ids, last FROM runeflow_events
    WHERE workflow_id = ? AND last > ? ORDER BY last LIMIT ?"""
INSERT_CONTENT = "INSERT OR IGNORE INTO runeflow_contents (hash, data) VALUES (?, ?)"
UPSERT_FACT = "INSERT OR REPLACE INTO runeflow_facts (fact_id, hash, data) VALUES (?, ?, NULL)"
UPSERT_INLINE_FACT = "INSERT OR REPLACE INTO runeflow_facts (fact_id, hash, data) VALUES (?, '', ?)"
SELECT_FACT_VALUES = """SELECT f.fact_id, COALESCE(f.data, c.data) AS value
    FROM runeflow_facts f LEFT JOIN runeflow_contents c ON c.hash = f.hash
    WHERE f.fact_id IN ({marks}) AND value IS NOT NULL"""
UPSERT_SNAPSHOT = (
    "INSERT OR REPLACE INTO runeflow_snapshots (workflow_id, cursor, data) VALUES (?, ?, ?)"
)
SELECT_SNAPSHOT = "SELECT cursor, data FROM runeflow_snapshots WHERE workflow_id = ?"
UPSERT_TIMER = (
    "INSERT OR REPLACE INTO runeflow_timers (timer_id, workflow_id, fire_at, payload) "
    "VALUES (?, ?, ?, ?)"
)
SELECT_DUE_TIMERS = """SELECT timer_id, workflow_id, fire_at, payload FROM runeflow_timers
    WHERE fire_at <= ? ORDER BY fire_at, timer_id LIMIT ?"""
SELECT_OWNED_DUE_TIMERS = """SELECT t.timer_id, t.workflow_id, t.fire_at, t.payload
    FROM runeflow_timers t JOIN runeflow_instances i ON i.workflow_id = t.workflow_id
    WHERE t.fire_at <= ? AND i.owner = ? AND i.lease_expires > ?
    ORDER BY t.fire_at, t.timer_id LIMIT ?"""
SELECT_TIMERS = """SELECT timer_id, workflow_id, fire_at, payload FROM runeflow_timers
    WHERE workflow_id = ? ORDER BY fire_at, timer_id"""
SELECT_NEXT_TIMER = "SELECT MIN(fire_at) FROM runeflow_timers"
DELETE_TIMER = "DELETE FROM runeflow_timers WHERE timer_id = ?"
SELECT_LEASE_STATE = """SELECT owner, lease_expires, epoch FROM runeflow_instances
    WHERE workflow_id = ?"""
GRANT_LEASE = """UPDATE runeflow_instances SET owner = ?, lease_expires = ?, epoch = ?
    WHERE workflow_id = ?"""
RENEW_LEASE = """UPDATE runeflow_instances SET lease_expires = ?
    WHERE workflow_id = ? AND owner = ? AND lease_expires > ?"""
SELECT_OWNED = """SELECT workflow_id, epoch FROM runeflow_instances
    WHERE owner = ? AND lease_expires > ?"""
RENEW_LEASES = """UPDATE runeflow_instances SET lease_expires = ?
    WHERE owner = ? AND lease_expires > ?"""
RELEASE_LEASE = """UPDATE runeflow_instances SET owner = NULL, lease_expires = 0
    WHERE workflow_id = ? AND owner = ?"""
SELECT_LEASE = """SELECT owner FROM runeflow_instances
    WHERE workflow_id = ? AND owner IS NOT NULL AND lease_expires > ?"""
SELECT_LIVE_OWNERS = """SELECT DISTINCT owner FROM runeflow_instances
    WHERE lease_expires > ? AND owner IS NOT NULL ORDER BY owner"""
SELECT_CLAIMABLE = """SELECT workflow_id, epoch FROM runeflow_instances
    WHERE workflow_id IN (
        SELECT workflow_id FROM runeflow_instances WHERE status = 'running'
        UNION SELECT workflow_id FROM runeflow_timers WHERE fire_at <= ?)
    AND (owner IS NULL OR lease_expires <= ? OR owner IN ({dead}))
    ORDER BY updated_at LIMIT ?"""
DELETE_INSTANCE = tuple(
    f"DELETE FROM {table} WHERE workflow_id = ?"
    for table in (
        "runeflow_events",
        "runeflow_snapshots",
        "runeflow_timers",
        "runeflow_instances",
    )
)
COUNT_STATS = """SELECT (SELECT COUNT(*) FROM runeflow_instances),
    (SELECT COALESCE(SUM(last - first + 1), 0) FROM runeflow_events),
    (SELECT COUNT(*) FROM runeflow_facts), (SELECT COUNT(*) FROM runeflow_contents)"""
CORRUPT_EVENT = """UPDATE runeflow_events SET data = substr(data, 1, length(data) / 2)
    WHERE workflow_id = ? AND first <= ? AND last >= ?"""

_BATCH_ROWS = 512
_MAX_PARAMS = 500


class SQLiteStore(Store):
    """A durable store in one SQLite file, shared safely by threads and processes.

    Args:
        path: the database file (created if missing).
        codec: the codec for values (default: :data:`runeflow.codec.default_codec`).
        synchronous: ``"NORMAL"`` (default; survives a killed process) or ``"FULL"``
            (also survives power loss, slower appends).
        busy_timeout: seconds to keep retrying while another writer holds the database.
        auto_setup: run :meth:`setup` now (creating or migrating the schema).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(durable=True, multi_process=True)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        codec: Codec | None = None,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout: float = 30.0,
        auto_setup: bool = True,
    ) -> None:
        super().__init__(codec=codec)
        if str(path) in ("", ":memory:") or str(path).startswith("file::memory:"):
            raise ValueError("SQLiteStore needs a file path; use MemoryStore for memory only")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        if auto_setup:
            self.setup()

    # --- connections and transactions -------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if self._closed:
            raise StoreError(f"the SQLite store at {self.path} is closed")
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._lock:
            self._connections.append(conn)
        return conn

    def _retry(self, work: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run ``work`` (in a write transaction if ``write``), retrying while busy."""
        conn = self._conn()
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.001
        while True:
            try:
                if not write:
                    return work(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise StoreError(f"SQLite store at {self.path} failed: {exc}") from exc
                if time.monotonic() > deadline:
                    raise StoreUnavailableError(
                        f"SQLite store at {self.path} stayed locked for {self.busy_timeout:g}s "
                        f"({exc}): another process holds its write lock"
                    ) from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.1)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"SQLite store at {self.path} failed: {exc}") from exc

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> builtins.list[Any]:
        return self._retry(lambda c: c.execute(sql, params).fetchall(), write=False)

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._retry(lambda c: c.execute(sql, params).fetchone(), write=False)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; return the number of rows changed."""
        return self._retry(lambda c: c.execute(sql, params).rowcount, write=False)

    def setup(self) -> None:
        """Create the schema or apply pending :data:`MIGRATIONS`; safe to call again.

        Raises:
            StoreError: the file was written by a newer runeflow (upgrade runeflow).
        """
        self._retry(self._migrate, write=True)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(SCHEMA_VERSION_TABLE)
        row = conn.execute("SELECT MAX(version) FROM runeflow_schema").fetchone()
        version = row[0] if row and row[0] is not None else 0
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database {self.path} has schema version {version}, newer than this "
                f"runeflow knows ({len(MIGRATIONS)}): upgrade runeflow to use it"
            )
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        if version < len(MIGRATIONS):
            conn.execute("DELETE FROM runeflow_schema")
            conn.execute("INSERT INTO runeflow_schema (version) VALUES (?)", (len(MIGRATIONS),))

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    # --- instances --------------------------------------------------------------------------

    def create(
        self,
        workflow_id: str,
        *,
        definition_name: str,
        definition_hash: str,
        status: str = "running",
        metadata: dict[str, Any] | None = None,
        events: Sequence[Event] = (),
        timers: Sequence[Timer] = (),
        owner: str | None = None,
        ttl: float = 0.0,
    ) -> bool:
        """See :meth:`Store.create`."""
        encoded = self._encode_append(events) if events else None
        timer_rows = [_timer_params(t) for t in timers]
        now = time.time()
        lease = (owner, 1, now + ttl) if owner is not None else (None, 0, 0.0)
        params = (workflow_id, definition_name, definition_hash, status, now, now)
        text = json_text(metadata, "metadata")

        def work(conn: sqlite3.Connection) -> bool:
            if conn.execute(INSERT_INSTANCE, (*params, text, *lease)).rowcount != 1:
                return False
            if encoded is not None:
                _write_log(conn, workflow_id, 0, encoded, now)
            if timer_rows:
                conn.executemany(UPSERT_TIMER, timer_rows)
            return True

        return self._retry(work, write=True)

    def exists(self, workflow_id: str) -> bool:
        """See :meth:`Store.exists`."""
        row = self._fetchone(SELECT_CURSOR, (workflow_id,))
        return row is not None

    def get(self, workflow_id: str) -> InstanceMeta:
        """See :meth:`Store.get`."""
        row = self._fetchone(SELECT_INSTANCE, (workflow_id,))
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        return _meta(row)

    def list(self, status: str | Collection[str] | None = None) -> builtins.list[InstanceMeta]:
        """See :meth:`Store.list`."""
        rows = self._fetchall(SELECT_INSTANCES)
        wanted = {status} if isinstance(status, str) else set(status or ())
        return [_meta(r) for r in rows if status is None or r[3] in wanted]

    def set_status(self, workflow_id: str, status: str) -> None:
        """See :meth:`Store.set_status`."""
        params = (status, time.time(), workflow_id)
        if self._execute(UPDATE_STATUS, params) == 0:
            raise WorkflowNotFoundError(workflow_id)

    def set_error(self, workflow_id: str, error: str | None) -> None:
        """See :meth:`Store.set_error`."""
        if self._execute(SET_ERROR, (error, workflow_id)) == 0:
            raise WorkflowNotFoundError(workflow_id)

    def delete(self, workflow_id: str) -> None:
        """See :meth:`Store.delete`."""

        def work(conn: sqlite3.Connection) -> None:
            for statement in DELETE_INSTANCE:
                conn.execute(statement, (workflow_id,))

        self._retry(work, write=True)

    # --- the log ----------------------------------------------------------------------------

    def append(
        self,
        workflow_id: str,
        events: Sequence[Event],
        *,
        status: str | None = None,
        token: int | None = None,
    ) -> int:
        """See :meth:`Store.append`."""
        encoded = self._encode_append(events) if events else None
        now = time.time()

        def work(conn: sqlite3.Connection) -> int:
            # BEGIN IMMEDIATE holds the write lock: neither the last position nor the fencing
            # token can move under us.
            row = conn.execute(SELECT_CURSOR, (workflow_id,)).fetchone()
            if row is None:
                raise StoreError(
                    f"cannot append to unknown workflow {workflow_id!r}: create() it first",
                    workflow_id=workflow_id,
                )
            cursor: int = row[0]
            if token is not None and token != row[1]:
                raise LeaseLostError(workflow_id, token, f"; it is at {row[1]}")
            if status is not None:  # writes nothing when the status is unchanged
                conn.execute(CHANGE_STATUS, (status, now, workflow_id, status))
            if encoded is None:
                return cursor
            return _write_log(conn, workflow_id, cursor, encoded, now)

        return self._retry(work, write=True)

    def stream(self, workflow_id: str, after: int = 0, *, values: bool = True) -> Iterator[Event]:
        """See :meth:`Store.stream`."""
        if not self.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id)
        return self._stream(workflow_id, after, values)

    def _stream(self, workflow_id: str, after: int, values: bool) -> Iterator[Event]:
        position = after
        while True:
            params = (workflow_id, position, _BATCH_ROWS)
            rows = self._fetchall(SELECT_EVENTS, params)
            if not rows:
                return
            loader = self._batch_loader(rows) if values else None
            for chunk in _log_chunks(rows):
                yield from self._decode_chunk(workflow_id, chunk, after, loader)
            if len(rows) < _BATCH_ROWS:
                return
            position = rows[-1][3]

    def _batch_loader(self, rows: builtins.list[Any]) -> Callable[[str], Any]:
        """Fetch and decode the fact values a batch of rows needs, in a few queries."""
        ids = _fact_ids(rows)
        found: dict[str, bytes] = {}
        for start in range(0, len(ids), _MAX_PARAMS):
            chunk = ids[start : start + _MAX_PARAMS]
            query = SELECT_FACT_VALUES.format(marks=",".join("?" * len(chunk)))
            found.update(self._fetchall(query, chunk))
        values = self._decode_values(found)

        def load(fact_id: str) -> Any:
            if fact_id in values:
                return values.pop(fact_id)
            return self.load_fact(fact_id)  # appended as a FactRef: its value was saved apart

        return load

    def cursor(self, workflow_id: str) -> int:
        """See :meth:`Store.cursor`."""
        row = self._fetchone(SELECT_CURSOR, (workflow_id,))
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        return int(row[0])

    # --- snapshots --------------------------------------------------------------------------

    def save_snapshot(self, workflow_id: str, cursor: int, snapshot: bytes) -> None:
        """See :meth:`Store.save_snapshot`."""
        params = (workflow_id, cursor, bytes(snapshot))
        self._execute(UPSERT_SNAPSHOT, params)

    def load_snapshot(self, workflow_id: str) -> tuple[int, bytes] | None:
        """See :meth:`Store.load_snapshot`."""
        row = self._fetchone(SELECT_SNAPSHOT, (workflow_id,))
        return (int(row[0]), bytes(row[1])) if row is not None else None

    # --- facts ------------------------------------------------------------------------------

    def save_fact(self, fact_id: str, value: Any) -> None:
        """See :meth:`Store.save_fact`."""
        data = self.codec.encode(value)
        digest = content_key(data)

        def work(conn: sqlite3.Connection) -> None:
            if digest is None:
                conn.execute(UPSERT_INLINE_FACT, (fact_id, data))
                return
            conn.execute(INSERT_CONTENT, (digest, data))
            conn.execute(UPSERT_FACT, (fact_id, digest))

        self._retry(work, write=True)

    def load_fact(self, fact_id: str) -> Any:
        """See :meth:`Store.load_fact`."""
        query = SELECT_FACT_VALUES.format(marks="?")
        row = self._fetchone(query, (fact_id,))
        if row is None:
            raise StoreError(f"no value is stored for fact {fact_id!r}")
        return self._decode_value(fact_id, row[1])

    def load_facts(self, fact_ids: Sequence[str]) -> dict[str, Any]:
        """See :meth:`Store.load_facts`."""
        found: dict[str, bytes] = {}
        ids = list(dict.fromkeys(fact_ids))
        for start in range(0, len(ids), _MAX_PARAMS):
            chunk = ids[start : start + _MAX_PARAMS]
            query = SELECT_FACT_VALUES.format(marks=",".join("?" * len(chunk)))
            found.update(self._fetchall(query, chunk))
        missing = [fid for fid in ids if fid not in found]
        if missing:
            raise StoreError(f"no value is stored for fact {missing[0]!r} ({len(missing)} missing)")
        return self._decode_values({fid: found[fid] for fid in ids})

    def stats(self) -> dict[str, int]:
        """See :meth:`Store.stats`."""
        row = self._fetchone(COUNT_STATS)
        return dict(zip(("instances", "events", "facts", "contents"), row, strict=True))

    # --- timers -----------------------------------------------------------------------------

    def schedule_timer(self, timer: Timer) -> None:
        """See :meth:`Store.schedule_timer`."""
        self._execute(UPSERT_TIMER, _timer_params(timer))

    def due_timers(
        self, now: float, limit: int = 100, *, owner: str | None = None
    ) -> builtins.list[Timer]:
        """See :meth:`Store.due_timers`."""
        if owner is None:
            rows = self._fetchall(SELECT_DUE_TIMERS, (now, limit))
        else:
            rows = self._fetchall(SELECT_OWNED_DUE_TIMERS, (now, owner, time.time(), limit))
        return [_timer(r) for r in rows]

    def cancel_timer(self, timer_id: str) -> bool:
        """See :meth:`Store.cancel_timer`."""
        return bool(self._execute(DELETE_TIMER, (timer_id,)))

    def timers(self, workflow_id: str) -> builtins.list[Timer]:
        """See :meth:`Store.timers`."""
        rows = self._fetchall(SELECT_TIMERS, (workflow_id,))
        return [_timer(r) for r in rows]

    def next_timer_at(self) -> float | None:
        """See :meth:`Store.next_timer_at`."""
        row = self._fetchone(SELECT_NEXT_TIMER)
        return float(row[0]) if row[0] is not None else None

    # --- leases -----------------------------------------------------------------------------

    def acquire_lease(
        self, workflow_id: str, owner: str, ttl: float, *, expect: int | None = None
    ) -> int | None:
        """See :meth:`Store.acquire_lease`."""

        def work(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(SELECT_LEASE_STATE, (workflow_id,)).fetchone()
            if row is None:
                return None
            return _grant(conn, workflow_id, row, owner, ttl, time.time(), expect)

        return self._retry(work, write=True)

    def renew_lease(self, workflow_id: str, owner: str, ttl: float) -> bool:
        """See :meth:`Store.renew_lease`."""
        now = time.time()
        params = (now + ttl, workflow_id, owner, now)
        return bool(self._execute(RENEW_LEASE, params))

    def renew_leases(self, owner: str, ttl: float) -> dict[str, int]:
        """See :meth:`Store.renew_leases`."""

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            now = time.time()
            owned = dict(conn.execute(SELECT_OWNED, (owner, now)).fetchall())
            conn.execute(RENEW_LEASES, (now + ttl, owner, now))
            return owned

        return self._retry(work, write=True)

    def release_lease(self, workflow_id: str, owner: str) -> None:
        """See :meth:`Store.release_lease`."""
        self._execute(RELEASE_LEASE, (workflow_id, owner))

    def lease_owner(self, workflow_id: str) -> str | None:
        """See :meth:`Store.lease_owner`."""
        params = (workflow_id, time.time())
        row = self._fetchone(SELECT_LEASE, params)
        return str(row[0]) if row is not None else None

    def live_owners(self) -> builtins.list[str]:
        """See :meth:`Store.live_owners`."""
        return [row[0] for row in self._fetchall(SELECT_LIVE_OWNERS, (time.time(),))]

    def claim(
        self,
        owner: str,
        ttl: float,
        *,
        limit: int,
        timers_due: float,
        dead_owners: Collection[str] = (),
        exclude: Collection[str] = (),
    ) -> builtins.list[tuple[str, int]]:
        """See :meth:`Store.claim` (the write lock keeps concurrent claims disjoint)."""
        dead = list(dead_owners)[:_MAX_PARAMS]
        query = SELECT_CLAIMABLE.format(dead=",".join("?" * len(dead)))

        def work(conn: sqlite3.Connection) -> builtins.list[tuple[str, int]]:
            now = time.time()
            params = (timers_due, now, *dead, limit + len(exclude))
            rows = [r for r in conn.execute(query, params) if r[0] not in exclude][:limit]
            conn.executemany(
                GRANT_LEASE, [(owner, now + ttl, epoch + 1, wid) for wid, epoch in rows]
            )
            return [(wid, epoch + 1) for wid, epoch in rows]

        return self._retry(work, write=True)

    # --- test hooks -------------------------------------------------------------------------

    def corrupt_event(self, workflow_id: str, cursor: int) -> None:
        """Damage the stored row holding event ``cursor`` (for tests of unreadable logs)."""
        params = (workflow_id, cursor, cursor)
        self._execute(CORRUPT_EVENT, params)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _fact_ids(rows: builtins.list[Any]) -> builtins.list[str]:
    """The fact ids listed by log rows (unreadable lists are skipped: facts load one by one)."""
    texts = [row[2] for row in rows if row[2]]
    if not texts:
        return []
    try:
        lists = json.loads("[" + ",".join(texts) + "]")
    except ValueError:
        lists = []
        for text in texts:
            try:
                lists.append(json.loads(text))
            except ValueError:
                continue
    return [fid for ids in lists for fid in ids]


def _write_log(
    conn: sqlite3.Connection, workflow_id: str, cursor: int, encoded: EncodedAppend, now: float
) -> int:
    """Write one encoded append after position ``cursor``; return the new last position."""
    first, cursor = cursor + 1, cursor + encoded.count
    conn.execute(
        INSERT_EVENTS, (workflow_id, cursor, first, encoded.blob, encoded.fact_ids_text, now)
    )
    if encoded.inline:
        conn.executemany(UPSERT_INLINE_FACT, encoded.inline.items())
    if encoded.contents:
        conn.executemany(INSERT_CONTENT, encoded.contents.items())
        conn.executemany(UPSERT_FACT, encoded.fact_hashes.items())
    return cursor


def _grant(
    conn: sqlite3.Connection,
    workflow_id: str,
    row: Any,
    owner: str,
    ttl: float,
    now: float,
    expect: int | None,
) -> int | None:
    """Grant the lease from its state ``(owner, expires, epoch)``; see ``acquire_lease``."""
    holder = row[0] if row[0] is not None and row[1] > now else None
    epoch: int = row[2]
    if (expect is not None and epoch != expect) or (holder is not None and holder != owner):
        return None
    if holder != owner or expect is not None:
        epoch += 1
    conn.execute(GRANT_LEASE, (owner, now + ttl, epoch, workflow_id))
    return epoch


def _timer_params(timer: Timer) -> tuple[str, str, float, str]:
    payload = json_text(timer.payload, "a timer payload")
    return (timer.timer_id, timer.workflow_id, timer.fire_at, payload)


def _meta(row: Any) -> InstanceMeta:
    return InstanceMeta(
        workflow_id=row[0],
        definition_name=row[1],
        definition_hash=row[2],
        status=row[3],
        created_at=row[4],
        updated_at=row[5],
        cursor=row[6],
        metadata=json.loads(row[7]),
        owner=row[8] if row[8] is not None and row[9] > time.time() else None,
        epoch=row[10],
        error=row[11],
    )


def _timer(row: Any) -> Timer:
    return Timer(timer_id=row[0], workflow_id=row[1], fire_at=row[2], payload=json.loads(row[3]))
