"""The embedded durable store: one SQLite file, stdlib :mod:`sqlite3`, WAL mode.

Each thread gets its own connection; several threads and several processes may share one
file. Writes take the write lock up front (``BEGIN IMMEDIATE``) and a busy database is
waited for (``busy_timeout`` plus a retry loop with backoff), never reported as an error.

Durability: with ``synchronous="NORMAL"`` (the default, in WAL mode) a committed append
survives the process being killed at any point; the last commits may be lost if the whole
machine loses power. ``synchronous="FULL"`` also survives power loss, at a cost per append.

The file is untrusted: log rows, snapshots and fact values carry checksums checked on every
read (see :mod:`runeflow.stores.integrity`), a row that cannot be read whole is flagged by
:meth:`SQLiteStore.list`, and a path that is no SQLite database, or cannot be opened or
written, raises :class:`~runeflow.errors.StoreError` naming it.
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
from runeflow.errors import (
    RuneflowError,
    StoreError,
    StoreUnavailableError,
    WorkflowNotFoundError,
)
from runeflow.model.events import Event
from runeflow.stores import _sqlite_sql as q
from runeflow.stores._rows import instance_meta, metas_in_order, read_instance, read_timer
from runeflow.stores._sqlite_bounded import compact, fenced, position, remove
from runeflow.stores._sqlite_errors import db_error, is_busy
from runeflow.stores._sqlite_sql import MIGRATIONS
from runeflow.stores._sqlite_writes import AppendStates, Pending, write_batch, write_lone
from runeflow.stores.base import (
    PRUNABLE,
    Append,
    Capabilities,
    InstanceMeta,
    Store,
    Timer,
    check_prune,
    content_key,
    json_text,
)
from runeflow.stores.batching import GroupCommit, outcome
from runeflow.stores.decoding import _log_chunks
from runeflow.stores.integrity import (
    checksum,
    compacted_log,
    log_read_failed,
    verified_snapshot,
)
from runeflow.stores.listing import IndexedListing

__all__ = ["MIGRATIONS", "SQLiteStore"]

T = TypeVar("T")

_BATCH_ROWS = 512
_MAX_PARAMS = 500


class SQLiteStore(IndexedListing, Store):
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
        self._commits: GroupCommit[Pending] = GroupCommit(
            self._write_appends, write_one=self._write_lone
        )
        if auto_setup:
            self.setup()

    # --- connections and transactions -------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if self._closed:
            raise StoreError(f"the SQLite store at {self.path} is closed")
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
            )
        except sqlite3.Error as exc:
            raise db_error(self.path, exc) from exc
        try:  # the first statements read the file: a file that is no database fails here
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        except sqlite3.Error as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
                raise StoreUnavailableError(
                    f"SQLite store at {self.path} stayed locked for {self.busy_timeout:g}s "
                    f"({exc}): another process holds it"
                ) from exc
            raise db_error(self.path, exc) from exc
        self._local.conn, self._local.pid = conn, os.getpid()
        self._local.known = AppendStates()
        with self._lock:
            self._connections.append(conn)
        return conn

    def _retry(
        self, work: Callable[..., T], *args: Any, write: bool, lone_append: bool = False
    ) -> T:
        """Run ``work(conn, *args)`` (in a write transaction if ``write``), retrying while
        busy. With ``lone_append``, the connection's :class:`AppendStates` is passed last;
        anything else this connection does forgets them (it may change what they hold)."""
        conn = self._conn()
        known: AppendStates = self._local.known
        if lone_append:
            args = (*args, known)
        else:
            known.forget()
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.001
        while True:
            try:
                if not write:
                    return work(conn, *args)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn, *args)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    known.forget()  # what the failed work noted was not committed
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise db_error(self.path, exc) from exc
                if time.monotonic() > deadline:
                    raise StoreUnavailableError(
                        f"SQLite store at {self.path} stayed locked for {self.busy_timeout:g}s "
                        f"({exc}): another process holds its write lock"
                    ) from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.1)
            except sqlite3.DatabaseError as exc:
                raise db_error(self.path, exc) from exc

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> builtins.list[Any]:
        return self._retry(lambda c: c.execute(sql, params).fetchall(), write=False)

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._retry(lambda c: c.execute(sql, params).fetchone(), write=False)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; return the number of rows changed."""
        changed: int = self._retry(lambda c: c.execute(sql, params).rowcount, write=False)
        return changed

    def setup(self) -> None:
        """Create the schema or apply pending :data:`MIGRATIONS`; safe to call again.

        Raises:
            StoreError: the file was written by a newer runeflow (upgrade runeflow), is not
                a SQLite database, cannot be opened or written, or holds tables runeflow did
                not make.
        """
        self._retry(self._migrate, write=True)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(q.SCHEMA_VERSION_TABLE)
        row = conn.execute("SELECT MAX(version) FROM runeflow_schema").fetchone()
        version = row[0] if row and row[0] is not None else 0
        if type(version) is not int or version < 0:
            raise StoreError(
                f"the database {self.path} records schema version {version!r}, which runeflow "
                "never writes: the file was changed outside runeflow or is damaged; restore "
                "it from a backup"
            )
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database {self.path} has schema version {version}, newer than this "
                f"runeflow knows ({len(MIGRATIONS)}): upgrade runeflow to use it"
            )
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                try:
                    conn.execute(statement)
                except sqlite3.OperationalError as exc:
                    if is_busy(exc):
                        raise
                    raise StoreError(
                        f"cannot bring the database {self.path} from schema version {version} "
                        f"to {number} ({exc}): it holds tables runeflow did not make, or that "
                        "were changed by hand. Use a new file, or restore it from a backup"
                    ) from exc
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
        """See :meth:`Store.create` (creates made at once share a transaction, with any
        appends made meanwhile)."""
        encoded = self._encode_append(events) if events else None
        timer_rows = [_timer_params(t) for t in timers]
        now = time.time()
        lease = (owner, 1, now + ttl) if owner is not None else (None, 0, 0.0)
        text = json_text(metadata, "metadata")
        row = (workflow_id, definition_name, definition_hash, status, now, now, text, *lease)
        pending = Pending(workflow_id, encoded, None, None, timer_rows, (), row)
        return outcome(self._commits.submit(pending)) >= 0

    def exists(self, workflow_id: str) -> bool:
        """See :meth:`Store.exists`."""
        row = self._fetchone(q.SELECT_CURSOR, (workflow_id,))
        return row is not None

    def get(self, workflow_id: str) -> InstanceMeta:
        """See :meth:`Store.get`."""
        row = self._fetchone(q.SELECT_INSTANCE, (workflow_id,))
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        return instance_meta(row, time.time())

    def list(self, status: str | Collection[str] | None = None) -> builtins.list[InstanceMeta]:
        """See :meth:`Store.list` (a row that cannot be read whole comes flagged)."""
        rows = self._fetchall(q.SELECT_INSTANCES)
        wanted = {status} if isinstance(status, str) else set(status or ())
        now = time.time()
        return [read_instance(r, now)[0] for r in rows if status is None or r[3] in wanted]

    def set_status(self, workflow_id: str, status: str) -> None:
        """See :meth:`Store.set_status`."""
        params = (status, time.time(), workflow_id)
        if self._execute(q.UPDATE_STATUS, params) == 0:
            raise WorkflowNotFoundError(workflow_id)

    def set_error(self, workflow_id: str, error: str | None) -> None:
        """See :meth:`Store.set_error`."""
        if self._execute(q.SET_ERROR, (error, workflow_id)) == 0:
            raise WorkflowNotFoundError(workflow_id)

    def delete(self, workflow_id: str) -> None:
        """See :meth:`Store.delete`."""
        self._retry(lambda conn: remove(conn, workflow_id), write=True)

    # --- the log ----------------------------------------------------------------------------

    def append(
        self,
        workflow_id: str,
        events: Sequence[Event],
        *,
        status: str | None = None,
        token: int | None = None,
        timers: Sequence[Timer] = (),
        done_timers: Sequence[str] = (),
    ) -> int:
        """See :meth:`Store.append` (appends made at once share a transaction)."""
        pending = Pending(
            workflow_id,
            self._encode_append(events) if events else None,
            status,
            token,
            [_timer_params(t) for t in timers] if timers else (),
            done_timers,
        )
        result = self._commits.submit(pending)
        if isinstance(result, Exception):
            raise result
        return result

    def append_many(self, appends: Sequence[Append]) -> builtins.list[int | Exception]:
        """See :meth:`Store.append_many` (one transaction)."""
        refused: builtins.list[Exception | None] = []  # None: written below, in order
        pending: builtins.list[Pending] = []
        for a in appends:
            try:
                encoded = self._encode_append(a.events) if a.events else None
                timer_rows = [_timer_params(t) for t in a.timers]
            except RuneflowError as exc:
                refused.append(exc)
                continue
            refused.append(None)
            pending.append(
                Pending(a.workflow_id, encoded, a.status, a.token, timer_rows, a.done_timers)
            )
        written = iter(self._write_appends(pending) if pending else ())
        return [next(written) if r is None else r for r in refused]

    def _write_appends(self, batch: builtins.list[Pending]) -> builtins.list[int | Exception]:
        """Write appends in one transaction; return each one's cursor or refusal."""
        return self._retry(write_batch, batch, time.time(), write=True)

    def _write_lone(self, pending: Pending) -> int | Exception:
        """:meth:`_write_appends` for a batch of one."""
        return self._retry(write_lone, pending, time.time(), write=True, lone_append=True)

    def stream(self, workflow_id: str, after: int = 0, *, values: bool = True) -> Iterator[Event]:
        """See :meth:`Store.stream`."""
        row = self._fetchone(q.SELECT_LOG_START, (workflow_id,))
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        if type(row[0]) is not int or after < row[0]:
            raise compacted_log(workflow_id, after, row[0])
        return self._stream(workflow_id, after, values)

    def _stream(self, workflow_id: str, after: int, values: bool) -> Iterator[Event]:
        position = after  # the events up to here are read (or skipped)
        while True:
            try:
                query = q.SELECT_EVENTS if values else q.SELECT_EVENTS_ONLY
                rows = self._fetchall(query, (workflow_id, position, _BATCH_ROWS))
                loader = self._value_loader(self._fact_rows(_fact_ids(rows))) if values else None
            except StoreUnavailableError:
                raise
            except StoreError as exc:  # e.g. a damaged database file: say where it stopped
                raise log_read_failed(workflow_id, position, exc) from exc
            if not rows:
                return
            for chunk in _log_chunks(rows):
                yield from self._decode_chunk(workflow_id, chunk, position, loader)
                position = chunk[-1][3]
            if len(rows) < _BATCH_ROWS:
                return

    def _fact_rows(self, ids: Sequence[str]) -> builtins.list[Any]:
        """Fetch the ``(fact_id, value, check)`` rows of ``ids`` (see
        :data:`~runeflow.stores._sqlite_sql.SELECT_FACT_VALUES`), in a few queries."""
        rows: builtins.list[Any] = []
        for start in range(0, len(ids), _MAX_PARAMS):
            chunk = ids[start : start + _MAX_PARAMS]
            query = q.SELECT_FACT_VALUES.format(marks=",".join("?" * len(chunk)))
            rows += self._fetchall(query, chunk)
        return rows

    def cursor(self, workflow_id: str) -> int:
        """See :meth:`Store.cursor`."""
        row = self._fetchone(q.SELECT_CURSOR, (workflow_id,))
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        return position(workflow_id, row[0])

    # --- snapshots --------------------------------------------------------------------------

    def save_snapshot(
        self,
        workflow_id: str,
        cursor: int,
        snapshot: bytes,
        *,
        token: int | None = None,
        fact_ids: Sequence[str] | None = None,
    ) -> None:
        """See :meth:`Store.save_snapshot`."""
        data = bytes(snapshot)
        refs = None if fact_ids is None else json.dumps(list(fact_ids), separators=(",", ":"))
        params = (workflow_id, cursor, data, checksum(data), refs)

        def work(conn: sqlite3.Connection) -> None:
            fenced(conn, workflow_id, token, cursor)
            conn.execute(q.UPSERT_SNAPSHOT, params)

        self._retry(work, write=True)

    def load_snapshot(self, workflow_id: str) -> tuple[int, bytes] | None:
        """See :meth:`Store.load_snapshot`."""
        row = self._fetchone(q.SELECT_SNAPSHOT, (workflow_id,))
        return verified_snapshot(workflow_id, row) if row is not None else None

    # --- bounded stores ---------------------------------------------------------------------

    def compact(self, workflow_id: str, *, token: int | None = None) -> int:
        """See :meth:`Store.compact` (one transaction, under the write lock)."""
        return self._retry(lambda conn: compact(conn, workflow_id, token), write=True)

    def prune(
        self,
        updated_before: float,
        statuses: Collection[str] = PRUNABLE,
        *,
        limit: int | None = 100,
        dry_run: bool = False,
    ) -> builtins.list[str]:
        """See :meth:`Store.prune` (one transaction: the write lock is held for one batch)."""
        wanted = check_prune(statuses, limit, dry_run)
        query = q.SELECT_PRUNABLE.format(marks=",".join("?" * len(wanted)))

        def select(conn: sqlite3.Connection) -> builtins.list[str]:
            params = (*wanted, updated_before, time.time(), updated_before, limit or -1)
            return [row[0] for row in conn.execute(query, params)]

        if dry_run:
            return self._retry(select, write=False)

        def work(conn: sqlite3.Connection) -> builtins.list[str]:
            ids = select(conn)
            for workflow_id in ids:
                remove(conn, workflow_id)
            return ids

        return self._retry(work, write=True)

    # --- facts ------------------------------------------------------------------------------

    def save_fact(self, fact_id: str, value: Any) -> None:
        """See :meth:`Store.save_fact`."""
        data = self.codec.encode(value)
        digest = content_key(data)

        def work(conn: sqlite3.Connection) -> None:
            if digest is None:
                conn.execute(q.UPSERT_INLINE_FACT, (fact_id, data, checksum(data), None))
                return
            conn.execute(q.INSERT_CONTENT, (digest, data))
            conn.execute(q.UPSERT_FACT, (fact_id, digest, None))

        self._retry(work, write=True)

    def load_fact(self, fact_id: str) -> Any:
        """See :meth:`Store.load_fact`."""
        return self._checked_values(self._fact_rows([fact_id]), [fact_id])[fact_id]

    def load_facts(self, fact_ids: Sequence[str]) -> dict[str, Any]:
        """See :meth:`Store.load_facts`."""
        ids = list(dict.fromkeys(fact_ids))
        return self._checked_values(self._fact_rows(ids), ids)

    def stats(self) -> dict[str, int]:
        """See :meth:`Store.stats`."""
        row = self._fetchone(q.COUNT_STATS)
        keys = ("instances", "events", "snapshots", "facts", "contents")
        return dict(zip(keys, row, strict=True))

    # --- timers -----------------------------------------------------------------------------

    def schedule_timer(self, timer: Timer) -> None:
        """See :meth:`Store.schedule_timer`."""
        params = _timer_params(timer)

        def work(conn: sqlite3.Connection) -> None:  # under the write lock, as delete/prune
            if conn.execute(q.SELECT_LOG_START, (timer.workflow_id,)).fetchone() is None:
                raise WorkflowNotFoundError(timer.workflow_id)
            conn.execute(q.UPSERT_TIMER, params)

        self._retry(work, write=True)

    def due_timers(
        self, now: float, limit: int = 100, *, owner: str | None = None
    ) -> builtins.list[Timer]:
        """See :meth:`Store.due_timers`."""
        if owner is None:
            rows = self._fetchall(q.SELECT_DUE_TIMERS, (now, limit))
        else:
            rows = self._fetchall(q.SELECT_OWNED_DUE_TIMERS, (now, owner, time.time(), limit))
        return [read_timer(r) for r in rows]

    def cancel_timer(self, timer_id: str) -> bool:
        """See :meth:`Store.cancel_timer`."""
        return bool(self._execute(q.DELETE_TIMER, (timer_id,)))

    def timers(self, workflow_id: str) -> builtins.list[Timer]:
        """See :meth:`Store.timers`."""
        rows = self._fetchall(q.SELECT_TIMERS, (workflow_id,))
        return [read_timer(r) for r in rows]

    def next_timer_at(self) -> float | None:
        """See :meth:`Store.next_timer_at`."""
        row = self._fetchone(q.SELECT_NEXT_TIMER)
        # SQLite orders numbers before text: text is found only when no timer has a number
        return float(row[0]) if type(row[0]) in (int, float) else None

    # --- leases -----------------------------------------------------------------------------

    def acquire_lease(
        self, workflow_id: str, owner: str, ttl: float, *, expect: int | None = None
    ) -> int | None:
        """See :meth:`Store.acquire_lease`."""

        def work(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(q.SELECT_LEASE_STATE, (workflow_id,)).fetchone()
            if row is None:
                return None
            return _grant(conn, workflow_id, row, owner, ttl, time.time(), expect)

        return self._retry(work, write=True)

    def renew_lease(self, workflow_id: str, owner: str, ttl: float) -> bool:
        """See :meth:`Store.renew_lease`."""
        now = time.time()
        params = (now + ttl, workflow_id, owner, now)
        return bool(self._execute(q.RENEW_LEASE, params))

    def renew_leases(self, owner: str, ttl: float) -> dict[str, int]:
        """See :meth:`Store.renew_leases`."""

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            now = time.time()
            owned = dict(conn.execute(q.SELECT_OWNED, (owner, now)).fetchall())
            conn.execute(q.RENEW_LEASES, (now + ttl, owner, now))
            return owned

        return self._retry(work, write=True)

    def release_lease(self, workflow_id: str, owner: str) -> None:
        """See :meth:`Store.release_lease`."""
        self._execute(q.RELEASE_LEASE, (workflow_id, owner))

    def release_leases(self, owner: str, workflow_ids: Collection[str]) -> None:
        """See :meth:`Store.release_leases` (one transaction)."""
        rows = [(wid, owner) for wid in workflow_ids]
        if rows:
            self._retry(lambda conn: conn.executemany(q.RELEASE_LEASE, rows), write=True)

    def lease_owner(self, workflow_id: str) -> str | None:
        """See :meth:`Store.lease_owner`."""
        params = (workflow_id, time.time())
        row = self._fetchone(q.SELECT_LEASE, params)
        return str(row[0]) if row is not None else None

    def live_owners(self) -> builtins.list[str]:
        """See :meth:`Store.live_owners`."""
        return [row[0] for row in self._fetchall(q.SELECT_LIVE_OWNERS, (time.time(),))]

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
        query = q.SELECT_CLAIMABLE.format(dead=",".join("?" * len(dead)))

        def work(conn: sqlite3.Connection) -> builtins.list[tuple[str, int]]:
            now = time.time()
            params = (timers_due, now, *dead, limit + len(exclude))
            # a row whose token is not a number cannot be leased (list() shows it flagged)
            rows = [
                r for r in conn.execute(query, params) if r[0] not in exclude and type(r[1]) is int
            ][:limit]
            conn.executemany(
                q.GRANT_LEASE, [(owner, now + ttl, epoch + 1, wid) for wid, epoch in rows]
            )
            return [(wid, epoch + 1) for wid, epoch in rows]

        return self._retry(work, write=True)

    # --- listing (schema 5: IndexedListing's methods, from runeflow.stores.listing) --------

    _listing_sql = q

    def _listing_read(self, statement: str, params: Sequence[Any]) -> builtins.list[Any]:
        return self._fetchall(statement, params)

    def _rows_by_id(self, ids: builtins.list[Any]) -> builtins.list[InstanceMeta]:
        query = q.SELECT_INSTANCES_BY_ID.format(marks=",".join("?" * len(ids)))
        return metas_in_order(self._fetchall(query, ids), ids)

    # --- test hooks -------------------------------------------------------------------------

    def corrupt_event(self, workflow_id: str, cursor: int) -> None:
        """Damage the stored row holding event ``cursor`` (for tests of unreadable logs)."""
        params = (workflow_id, cursor, cursor)
        self._execute(q.CORRUPT_EVENT, params)


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
    if type(row[1]) not in (int, float) or type(row[2]) is not int:
        raise StoreError(
            f"cannot lease instance {workflow_id!r}: its stored row is damaged (lease expiry "
            f"{row[1]!r}, fencing token {row[2]!r}): restore the database from a backup, or "
            "delete the instance (Store.delete)",
            workflow_id=workflow_id,
        )
    holder = row[0] if row[0] is not None and row[1] > now else None
    epoch: int = row[2]
    if (expect is not None and epoch != expect) or (holder is not None and holder != owner):
        return None
    if holder != owner or expect is not None:
        epoch += 1
    conn.execute(q.GRANT_LEASE, (owner, now + ttl, epoch, workflow_id))
    return epoch


def _timer_params(timer: Timer) -> tuple[str, str, float, str]:
    payload = json_text(timer.payload, "a timer payload")
    return (timer.timer_id, timer.workflow_id, timer.fire_at, payload)
