"""The PostgreSQL store (extra ``runeflow[postgres]``): psycopg 3 with a connection pool.

All tables live in one schema (``runeflow`` by default), created and migrated by
:meth:`PostgresStore.setup` under an advisory lock, so several processes may start at once.
An append is one SQL statement: it takes a share lock on the instance's row (so that the
fencing check cannot race a new grant, without writing the row) and writes the log row, fact
values and timer changes. Appends that threads make at once share one transaction (group
commit, see :mod:`runeflow.stores.batching`), so they share one WAL flush.
Only parameterised SQL is sent; the schema name is checked and quoted as an identifier.
"""

from __future__ import annotations

import builtins
import math
import random
import re
import time
import zlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from runeflow.codec import Codec
from runeflow.errors import (
    LeaseLostError,
    RuneflowError,
    StoreError,
    StoreUnavailableError,
    UsageError,
    WorkflowNotFoundError,
)
from runeflow.model.events import Event
from runeflow.stores import _postgres_sql as listing_sql
from runeflow.stores._postgres_sql import (
    MIGRATIONS,
    QUERIES,
    READS,
    SCHEMA_VERSION_TABLE,
    TABLES,
)
from runeflow.stores._postgres_writes import append_params, append_results
from runeflow.stores._rows import instance_meta, metas_in_order, read_instance, read_timer
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
    snapshot_ahead,
    snapshot_before_log,
    verified_snapshot,
)
from runeflow.stores.listing import (
    IndexedListing,
    InstanceFilter,
    InstancePage,
    PageKey,
)

try:
    import psycopg
    from psycopg import sql
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from psycopg import Connection

from runeflow.stores._postgres_connect import check_connect, mask_dsn, mask_password, one_line

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION_TABLE",
    "TABLES",
    "PostgresStore",
    "mask_dsn",
    "mask_password",
]

INSTALL_HINT = 'the Postgres store needs: pip install "runeflow[postgres]"'


_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_BATCH_ROWS = 512
_POSITION_RETRIES = 50
"""Attempts of an append that lost the race for a log position to another writer appending
to the same instance at the same time (only concurrent callers of one instance do)."""


class PostgresStore(IndexedListing, Store):
    """A durable store in PostgreSQL, shared by any number of processes and machines.

    Args:
        dsn: a libpq connection string or ``postgresql://`` URL (ignored when ``pool`` is
            given).
        pool: an open ``psycopg_pool.ConnectionPool`` to use instead of creating one; the
            store does not close it.
        schema: the schema holding the store's tables (a plain SQL identifier).
        codec: the codec for values (default: :data:`runeflow.codec.default_codec`).
        min_size: minimum connections of the pool the store creates.
        max_size: maximum connections of the pool the store creates.
        auto_setup: run :meth:`setup` now (creating or migrating the schema).
        connect_timeout: seconds to wait for a connection. When the store creates its pool it
            first connects once, so that a wrong URL or a server that is down fails at once
            with the server's reason; the pool then waits at most this long to connect and to
            lend a connection. libpq counts whole seconds: it is rounded up, at least 2.

    Raises:
        ImportError: psycopg or psycopg_pool is not installed.
        ValueError: the schema name is not a plain identifier, neither dsn nor pool given,
            or connect_timeout is not a positive number.
        StoreError: the store cannot connect (refused, authentication failed, unknown
            database, timed out...); the message masks the password.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(durable=True, multi_process=True)

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: ConnectionPool | None = None,
        schema: str = "runeflow",
        codec: Codec | None = None,
        min_size: int = 1,
        max_size: int = 4,
        auto_setup: bool = True,
        connect_timeout: float = 5.0,
    ) -> None:
        if psycopg is None:
            raise ImportError(INSTALL_HINT)
        super().__init__(codec=codec)
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema must be a plain SQL identifier, not {schema!r}")
        if pool is None and dsn is None:
            raise ValueError("PostgresStore needs a dsn or a pool")
        if not (connect_timeout > 0 and math.isfinite(connect_timeout)):
            raise ValueError(
                f"connect_timeout must be a positive number of seconds, not {connect_timeout!r}"
            )
        self.schema = schema
        self._owns_pool = pool is None
        if pool is None:
            seconds = max(2, math.ceil(connect_timeout))  # libpq: whole seconds, at least 2
            check_connect(dsn or "", seconds)
            pool = ConnectionPool(
                dsn or "",
                min_size=min_size,
                max_size=max_size,
                kwargs={"autocommit": True, "connect_timeout": seconds},
                open=True,
                name=f"runeflow-{schema}",
                timeout=connect_timeout,
            )
        self._pool: ConnectionPool = pool
        # rendered once: composing a statement at every call costs more than sending it
        self._q = {name: _compose(text, schema).as_bytes(None) for name, text in QUERIES.items()}
        self._listing: dict[str, sql.Composed] = {}
        # the advisory lock between writers of contents (shared) and their collection
        self._contents_lock = zlib.crc32(f"runeflow-contents:{schema}".encode())
        # appends write on all connections but one (kept for reads and lease renewals) at
        # once, and share transactions only when all those are busy: on PostgreSQL the
        # client's work per append weighs as much as the commit (see README, Performance)
        self._commits: GroupCommit[dict[str, Any]] = GroupCommit(
            self._write_appends, max_writers=max(1, pool.max_size - 1)
        )
        if auto_setup:
            try:
                self.setup()
            except BaseException:
                self.close()  # a store that failed to open leaves no pool behind
                raise

    # --- connections ------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Connection[Any]]:
        """Lend a pooled connection; database failures become :class:`StoreError`."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailableError(
                f"PostgreSQL store (schema {self.schema!r}) unavailable: {one_line(str(exc))}"
            ) from exc
        except psycopg.Error as exc:
            raise _failed(self.schema, exc) from exc

    def _fetchall(self, name: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self._query(name, params, all_rows=True)

    def _fetchone(self, name: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self._query(name, params, all_rows=False)

    def _query(self, name: str, params: Sequence[Any] | dict[str, Any], *, all_rows: bool) -> Any:
        """Run one statement. A read that meets a dead pooled connection (the server was
        restarted) is retried on a fresh one; a write never is (its outcome is unknown)."""
        attempts = 3 if name in READS else 1
        for attempt in range(attempts):
            try:
                with self._connection() as conn:
                    cursor = conn.execute(self._q[name], params)
                    return cursor.fetchall() if all_rows else cursor.fetchone()
            except StoreUnavailableError:
                if attempt + 1 == attempts:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _execute(self, name: str, params: Sequence[Any] = ()) -> int:
        with self._connection() as conn:
            return conn.execute(self._q[name], params).rowcount

    def setup(self) -> None:
        """Create the schema or apply pending :data:`MIGRATIONS`; safe to call again.

        Raises:
            StoreError: the schema was written by a newer runeflow (upgrade runeflow), or
                holds tables runeflow did not make.
        """
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"runeflow:{self.schema}",))
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            conn.execute(_compose(SCHEMA_VERSION_TABLE, self.schema))
            row = conn.execute(
                _compose("SELECT MAX(version) FROM {schema}.schema_version", self.schema)
            ).fetchone()
            version = row[0] if row and row[0] is not None else 0
            if version < 0:
                raise StoreError(
                    f"the PostgreSQL schema {self.schema!r} records version {version}, which "
                    "runeflow never writes: it was changed by hand; restore it from a backup"
                )
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the PostgreSQL schema {self.schema!r} has version {version}, newer than "
                    f"this runeflow knows ({len(MIGRATIONS)}): upgrade runeflow to use it"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(_compose(statement, self.schema))
            if version < len(MIGRATIONS):
                conn.execute(_compose("DELETE FROM {schema}.schema_version", self.schema))
                conn.execute(
                    _compose("INSERT INTO {schema}.schema_version VALUES (%s)", self.schema),
                    (len(MIGRATIONS),),
                )

    def close(self) -> None:
        """Close the pool, if this store created it."""
        if self._owns_pool:
            self._pool.close()

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
        append = self._append_params(workflow_id, events, None, None) if events else None
        timer_rows = [_timer_params(t) for t in timers]
        now = time.time()
        text = json_text(metadata, "metadata")
        lease = (owner, 1, now + ttl) if owner is not None else (None, 0, 0.0)
        params = (workflow_id, definition_name, definition_hash, status, now, now, text, *lease)
        with self._connection() as conn, conn.transaction():
            if conn.execute(self._q["insert_instance"], params).fetchone() is None:
                return False
            if append is not None:
                conn.execute(self._q[append["_statement"]], append)
            if timer_rows:
                conn.cursor().executemany(self._q["upsert_timer"], timer_rows)
        return True

    def exists(self, workflow_id: str) -> bool:
        """See :meth:`Store.exists`."""
        return self._fetchone("select_cursor", (workflow_id,)) is not None

    def get(self, workflow_id: str) -> InstanceMeta:
        """See :meth:`Store.get`."""
        row = self._fetchone("select_instance", (workflow_id,))
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        return instance_meta(row, time.time())

    def list(self, status: str | Collection[str] | None = None) -> builtins.list[InstanceMeta]:
        """See :meth:`Store.list` (a row that cannot be read whole comes flagged)."""
        wanted = None if status is None else [status] if isinstance(status, str) else [*status]
        rows = self._fetchall("select_instances", (wanted, wanted))
        now = time.time()
        return [read_instance(r, now)[0] for r in rows]

    def set_status(self, workflow_id: str, status: str) -> None:
        """See :meth:`Store.set_status`."""
        if self._execute("update_status", (status, time.time(), workflow_id)) == 0:
            raise WorkflowNotFoundError(workflow_id)

    def set_error(self, workflow_id: str, error: str | None) -> None:
        """See :meth:`Store.set_error`."""
        if self._execute("set_error", (error, workflow_id)) == 0:
            raise WorkflowNotFoundError(workflow_id)

    def delete(self, workflow_id: str) -> None:
        """See :meth:`Store.delete`."""
        with self._connection() as conn, conn.transaction():
            self._remove(conn, [workflow_id])

    def _remove(self, conn: Connection[Any], ids: builtins.list[str]) -> None:
        """Delete instances with the facts only they refer to (in the caller's transaction)."""
        facts = conn.execute(self._q["owned_facts"], {"ids": ids}).fetchall()
        for table in ("events", "snapshots", "timers", "instances"):
            conn.execute(self._q[f"delete_{table}"], (ids,))
        self._collect(conn, facts)

    def _collect(self, conn: Connection[Any], facts: builtins.list[Any]) -> None:
        """Delete the fact rows ``(fact_id, hash)``, then the contents no fact uses any more
        (under the exclusive contents lock, held to the end of the transaction)."""
        if not facts:
            return
        conn.execute(self._q["delete_facts"], ([row[0] for row in facts],))
        hashes = sorted({row[1] for row in facts if row[1]})
        if hashes:
            conn.execute(self._q["lock_contents"], (self._contents_lock,))
            conn.execute(self._q["delete_unused_contents"], (hashes,))

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
        params = self._append_params(workflow_id, events, status, token, timers, done_timers)
        return outcome(self._commits.submit(params))

    def append_many(self, appends: Sequence[Append]) -> builtins.list[int | Exception]:
        """See :meth:`Store.append_many` (one transaction)."""
        refused: builtins.list[Exception | None] = []  # None: written below, in order
        pending: builtins.list[dict[str, Any]] = []
        for a in appends:
            try:
                params = self._append_params(
                    a.workflow_id, a.events, a.status, a.token, a.timers, a.done_timers
                )
            except RuneflowError as exc:
                refused.append(exc)
                continue
            refused.append(None)
            pending.append(params)
        written = iter(self._write_appends(pending) if pending else ())
        return [next(written) if r is None else r for r in refused]

    def _write_appends(
        self, batch: builtins.list[dict[str, Any]]
    ) -> builtins.list[int | Exception]:
        """Write appends in one transaction (pipelined: one round trip); return each one's
        cursor or refusal. Never retried after a failed commit (its outcome is unknown);
        retried when two writers appended to one instance at once and this one lost (the
        log position both read is taken: nothing of this transaction was written)."""
        q = self._q
        with self._connection() as conn:
            for attempt in range(_POSITION_RETRIES):
                try:
                    if len(batch) == 1:  # autocommit: the statement is its own transaction
                        params = batch[0]
                        rows = [conn.execute(q[params["_statement"]], params).fetchone()]
                    else:
                        # instance rows locked in id order (stable: one instance's appends
                        # keep theirs), as lease renewals lock them: the two never deadlock
                        order = sorted(range(len(batch)), key=lambda i: batch[i]["wid"])
                        with conn.pipeline(), conn.transaction():
                            cursors = {
                                i: conn.execute(q[batch[i]["_statement"]], batch[i]) for i in order
                            }
                        rows = [cursors[i].fetchone() for i in range(len(batch))]
                    break
                except psycopg.errors.UniqueViolation as exc:
                    if (
                        exc.diag.constraint_name != "events_pkey"
                        or attempt + 1 == _POSITION_RETRIES
                    ):
                        raise
                    time.sleep(random.random() * 0.002 * (attempt + 1))
        refused = [p["wid"] for p, row in zip(batch, rows, strict=True) if row is None]
        epochs = dict(self._fetchall("select_epochs", (refused,))) if refused else {}
        return append_results(batch, rows, epochs)

    def _append_params(
        self,
        workflow_id: str,
        events: Sequence[Event],
        status: str | None,
        token: int | None,
        timers: Sequence[Timer] = (),
        done_timers: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The parameters of the ``append`` statement (events encoded, values kept apart)."""
        encoded = self._encode_append(events) if events else None
        timer_rows = [_timer_params(t) for t in timers]
        return append_params(
            workflow_id, encoded, status, token, timer_rows, done_timers, self._contents_lock
        )

    def stream(self, workflow_id: str, after: int = 0, *, values: bool = True) -> Iterator[Event]:
        """See :meth:`Store.stream`."""
        row = self._fetchone("select_log_start", (workflow_id,))
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        if after < row[0]:
            raise compacted_log(workflow_id, after, int(row[0]))
        return self._stream(workflow_id, after, values)

    def _stream(self, workflow_id: str, after: int, values: bool) -> Iterator[Event]:
        position = after  # the events up to here are read (or skipped)
        while True:
            try:
                query = "select_events" if values else "select_events_only"  # no fact ids
                rows = self._fetchall(query, (workflow_id, position, _BATCH_ROWS))
                loader = None
                if values:
                    ids = [fid for r in rows if r[2] for fid in r[2]]
                    loader = self._value_loader(self._fact_rows(ids))
            except StoreUnavailableError:
                raise
            except StoreError as exc:
                raise log_read_failed(workflow_id, position, exc) from exc
            if not rows:
                return
            for chunk in _log_chunks(rows):
                yield from self._decode_chunk(workflow_id, chunk, position, loader)
                position = chunk[-1][3]
            if len(rows) < _BATCH_ROWS:
                return

    def _fact_rows(self, ids: builtins.list[str]) -> builtins.list[Any]:
        """Fetch the ``(fact_id, value, check)`` rows of ``ids``: ``check`` is the CRC-32 of a
        value kept in the fact's row (``None`` before schema version 4), the SHA-256 key of
        one kept in the content table."""
        if not ids:
            return []
        rows = self._fetchall("select_fact_values", (ids,))
        return [(fid, value, digest if crc is None else crc) for fid, value, crc, digest in rows]

    def cursor(self, workflow_id: str) -> int:
        """See :meth:`Store.cursor`."""
        row = self._fetchone("select_cursor", (workflow_id,))
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        return int(row[0])

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
        refs = None if fact_ids is None else list(fact_ids)
        with self._connection() as conn, conn.transaction():
            self._fence(conn, "fence_share", workflow_id, token, cursor)
            conn.execute(
                self._q["upsert_snapshot"], (workflow_id, cursor, data, checksum(data), refs)
            )

    def _fence(
        self,
        conn: Connection[Any],
        lock: str,
        workflow_id: str,
        token: int | None,
        snapshot: int | None = None,
    ) -> None:
        """Lock the instance row (``lock``: share or update) and check, as ``append`` does,
        that ``token`` is still its fencing token; a snapshot at ``snapshot`` must not be
        before the start of its compacted log."""
        row = conn.execute(self._q[lock], (workflow_id,)).fetchone()
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        if token is not None and token != row[0]:
            raise LeaseLostError(workflow_id, token, f"; it is at {row[0]}")
        if snapshot is not None and snapshot < row[1]:
            raise snapshot_before_log(workflow_id, snapshot, int(row[1]))

    # --- bounded stores ---------------------------------------------------------------------

    def compact(self, workflow_id: str, *, token: int | None = None) -> int:
        """See :meth:`Store.compact` (one transaction; appends to the instance wait for it)."""
        q = self._q
        with self._connection() as conn, conn.transaction():
            self._fence(conn, "fence_update", workflow_id, token)
            snap = conn.execute(q["snapshot_refs"], (workflow_id,)).fetchone()
            if snap is None:
                return 0
            upto = int(snap[0])
            found = conn.execute(q["compactable"], {"wid": workflow_id, "upto": upto}).fetchone()
            count, last, at, end = found or (0, 0, None, 0)
            if not count:
                return 0
            if upto > end:
                raise snapshot_ahead(workflow_id, upto, int(end))
            facts: builtins.list[Any] = []
            if snap[1] is not None:  # a snapshot that lists its facts: collect the others
                kept = set(snap[1])
                rows = conn.execute(q["compacted_facts"], {"wid": workflow_id, "upto": last})
                facts = [row for row in rows if row[0] not in kept]
            conn.execute(q["delete_compacted"], (workflow_id, last))
            conn.execute(q["set_compacted"], (last, at or 0.0, workflow_id))
            self._collect(conn, facts)
            return int(count)

    def prune(
        self,
        updated_before: float,
        statuses: Collection[str] = PRUNABLE,
        *,
        limit: int | None = 100,
        dry_run: bool = False,
    ) -> builtins.list[str]:
        """See :meth:`Store.prune` (the batch's rows are locked ``SKIP LOCKED``: concurrent
        pruners take disjoint batches, and an instance being written is left for later)."""
        wanted = check_prune(statuses, limit, dry_run)
        params = {"statuses": wanted, "before": updated_before, "now": time.time(), "limit": limit}
        if dry_run:
            return [str(row[0]) for row in self._fetchall("select_prunable", params)]
        with self._connection() as conn, conn.transaction():
            ids = [str(row[0]) for row in conn.execute(self._q["lock_prunable"], params)]
            if ids:
                self._remove(conn, ids)
        return ids

    def load_snapshot(self, workflow_id: str) -> tuple[int, bytes] | None:
        """See :meth:`Store.load_snapshot`."""
        row = self._fetchone("select_snapshot", (workflow_id,))
        return verified_snapshot(workflow_id, row) if row is not None else None

    # --- facts ------------------------------------------------------------------------------

    def save_fact(self, fact_id: str, value: Any) -> None:
        """See :meth:`Store.save_fact`."""
        data = self.codec.encode(value)
        digest = content_key(data)
        with self._connection() as conn, conn.transaction():
            if digest is None:
                conn.execute(self._q["upsert_fact"], (fact_id, "", data, checksum(data)))
                return
            conn.execute(self._q["lock_contents_shared"], (self._contents_lock,))
            conn.execute(self._q["insert_content"], (digest, data))
            conn.execute(self._q["upsert_fact"], (fact_id, digest, None, None))

    def load_fact(self, fact_id: str) -> Any:
        """See :meth:`Store.load_fact`."""
        return self._checked_values(self._fact_rows([fact_id]), [fact_id])[fact_id]

    def load_facts(self, fact_ids: Sequence[str]) -> dict[str, Any]:
        """See :meth:`Store.load_facts`."""
        ids = list(dict.fromkeys(fact_ids))
        if not ids:
            return {}
        return self._checked_values(self._fact_rows(ids), ids)

    def stats(self) -> dict[str, int]:
        """See :meth:`Store.stats`."""
        row = self._fetchone("stats")
        return {
            key: int(value)
            for key, value in zip(
                ("instances", "events", "snapshots", "facts", "contents"), row, strict=True
            )
        }

    # --- timers -----------------------------------------------------------------------------

    def schedule_timer(self, timer: Timer) -> None:
        """See :meth:`Store.schedule_timer`."""
        if self._execute("upsert_timer", _timer_params(timer)) == 0:
            raise WorkflowNotFoundError(timer.workflow_id)

    def due_timers(
        self, now: float, limit: int = 100, *, owner: str | None = None
    ) -> builtins.list[Timer]:
        """See :meth:`Store.due_timers`."""
        if owner is None:
            rows = self._fetchall("select_due_timers", (now, limit))
        else:
            rows = self._fetchall("select_owned_due_timers", (now, owner, time.time(), limit))
        return [read_timer(r) for r in rows]

    def cancel_timer(self, timer_id: str) -> bool:
        """See :meth:`Store.cancel_timer`."""
        return self._execute("delete_timer", (timer_id,)) == 1

    def timers(self, workflow_id: str) -> builtins.list[Timer]:
        """See :meth:`Store.timers`."""
        return [read_timer(r) for r in self._fetchall("select_timers", (workflow_id,))]

    def next_timer_at(self) -> float | None:
        """See :meth:`Store.next_timer_at`."""
        row = self._fetchone("select_next_timer")
        return float(row[0]) if row[0] is not None else None

    # --- leases -----------------------------------------------------------------------------

    def acquire_lease(
        self, workflow_id: str, owner: str, ttl: float, *, expect: int | None = None
    ) -> int | None:
        """See :meth:`Store.acquire_lease`."""
        with self._connection() as conn, conn.transaction():
            row = conn.execute(self._q["lock_lease"], (workflow_id,)).fetchone()
            if row is None:
                return None
            now = time.time()
            holder = row[0] if row[0] is not None and row[1] > now else None
            epoch = int(row[2])
            if (expect is not None and epoch != expect) or holder not in (None, owner):
                return None
            if holder != owner or expect is not None:
                epoch += 1
            conn.execute(self._q["grant_lease"], (owner, now + ttl, epoch, workflow_id))
            return epoch

    def renew_lease(self, workflow_id: str, owner: str, ttl: float) -> bool:
        """See :meth:`Store.renew_lease`."""
        now = time.time()
        return self._execute("renew_lease", (now + ttl, workflow_id, owner, now)) == 1

    def renew_leases(self, owner: str, ttl: float) -> dict[str, int]:
        """See :meth:`Store.renew_leases`."""
        now = time.time()
        rows = self._fetchall("renew_leases", (owner, now, now + ttl))
        return {wid: int(epoch) for wid, epoch in rows}

    def release_lease(self, workflow_id: str, owner: str) -> None:
        """See :meth:`Store.release_lease`."""
        self._execute("release_lease", (workflow_id, owner))

    def release_leases(self, owner: str, workflow_ids: Collection[str]) -> None:
        """See :meth:`Store.release_leases` (one statement)."""
        if workflow_ids:
            self._execute("release_leases", (list(workflow_ids), owner))

    def lease_owner(self, workflow_id: str) -> str | None:
        """See :meth:`Store.lease_owner`."""
        row = self._fetchone("select_lease", (workflow_id, time.time()))
        return str(row[0]) if row is not None else None

    def live_owners(self) -> builtins.list[str]:
        """See :meth:`Store.live_owners`."""
        return [str(r[0]) for r in self._fetchall("live_owners", (time.time(),))]

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
        """See :meth:`Store.claim` (``FOR UPDATE SKIP LOCKED`` keeps concurrent claims
        disjoint)."""
        now = time.time()
        params = {
            "due": timers_due,
            "now": now,
            "dead": list(dead_owners),
            "exclude": list(exclude),
            "limit": limit,
            "owner": owner,
            "until": now + ttl,
        }
        return [(str(wid), int(epoch)) for wid, epoch in self._fetchall("claim", params)]

    # --- listing (schema 6: IndexedListing's methods, from runeflow.stores.listing) --------

    _listing_sql = listing_sql

    def list_page(
        self,
        where: InstanceFilter | None = None,
        *,
        after: PageKey | None = None,
        before: PageKey | None = None,
        limit: int = 50,
    ) -> InstancePage:
        """See :meth:`Store.list_page` (``created_at`` is a number here: so is a key's)."""
        for key in (after, before):
            if key is not None and type(key[0]) not in (int, float):
                raise UsageError(f"a page key's created_at must be a number, not {key[0]!r}")
        return super().list_page(where, after=after, before=before, limit=limit)

    def _listing_read(self, statement: str, params: Sequence[Any]) -> builtins.list[Any]:
        return self._read(statement, params)

    def _rows_by_id(self, ids: builtins.list[Any]) -> builtins.list[InstanceMeta]:
        return metas_in_order(self._read(listing_sql.SELECT_INSTANCES_BY_ID, [ids]), ids)

    def _read(self, template: str, params: Sequence[Any]) -> builtins.list[Any]:
        """Run a read-only statement built at run time (``{schema}`` filled in and cached),
        retried on a fresh connection like the named reads."""
        statement = self._listing.get(template)
        if statement is None:
            statement = self._listing[template] = _compose(template, self.schema)
        for attempt in range(3):
            try:
                with self._connection() as conn:
                    return conn.execute(statement, params).fetchall()
            except StoreUnavailableError:
                if attempt == 2:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    # --- test hooks -------------------------------------------------------------------------

    def corrupt_event(self, workflow_id: str, cursor: int) -> None:
        """Damage the stored row holding event ``cursor`` (for tests of unreadable logs)."""
        self._execute("corrupt_event", (workflow_id, cursor, cursor))


def _compose(template: str, schema: str) -> sql.Composed:
    """Fill ``{schema}`` in a statement with the quoted schema name."""
    return sql.SQL(template).format(schema=sql.Identifier(schema))


def _timer_params(timer: Timer) -> tuple[str, str, float, str]:
    payload = json_text(timer.payload, "a timer payload")
    return (timer.timer_id, timer.workflow_id, timer.fire_at, payload)


_SCHEMA_MISMATCH = frozenset(
    {"42703", "42P01", "42P07", "42804", "42809", "42710", "42P16", "42883", "42846"}
)
"""SQLSTATEs of a schema whose tables are not as runeflow made them: undefined column or
table, duplicate table or object, datatype mismatch, wrong object type, invalid table
definition, undefined function or operator, impossible cast."""


def _failed(schema: str, exc: Exception) -> StoreError:
    """The :class:`StoreError` for a failed statement, saying when the schema is at fault."""
    if getattr(exc, "sqlstate", None) in _SCHEMA_MISMATCH:
        return StoreError(
            f"PostgreSQL store (schema {schema!r}) failed: {one_line(str(exc))}. The schema's "
            "tables are not as this runeflow made them: another program uses the schema, or "
            "it was changed by hand. Use another schema (PostgresStore(..., schema=...)), or "
            "restore it from a backup"
        )
    return StoreError(f"PostgreSQL store (schema {schema!r}) failed: {exc}")
