"""The PostgreSQL store (extra ``runeflow[postgres]``): psycopg 3 with a connection pool.

All tables live in one schema (``runeflow`` by default), created and migrated by
:meth:`PostgresStore.setup` under an advisory lock, so several processes may start at once.
An append is one SQL statement: it advances the instance's cursor (locking its row, which
serialises concurrent appends to one workflow) and writes the events and fact values.
Only parameterised SQL is sent; the schema name is checked and quoted as an identifier.
"""

from __future__ import annotations

import builtins
import json
import math
import re
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote

from runeflow.codec import Codec
from runeflow.errors import LeaseLostError, StoreError, StoreUnavailableError, WorkflowNotFoundError
from runeflow.model.events import Event
from runeflow.stores.base import (
    Capabilities,
    InstanceMeta,
    Store,
    Timer,
    _log_chunks,
    content_key,
    json_text,
)

try:
    import psycopg
    from psycopg import sql
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["MIGRATIONS", "TABLES", "PostgresStore"]

INSTALL_HINT = 'the Postgres store needs: pip install "runeflow[postgres]"'

TABLES = ("instances", "events", "contents", "facts", "snapshots", "timers")
"""The store's tables (besides ``schema_version``), all in its schema."""

SCHEMA_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    version INTEGER NOT NULL)"""

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE {schema}.instances (
            workflow_id TEXT PRIMARY KEY,
            definition_name TEXT NOT NULL,
            definition_hash TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            cursor BIGINT NOT NULL DEFAULT 0,
            metadata JSONB NOT NULL DEFAULT '{{}}')""",
        "CREATE INDEX instances_status ON {schema}.instances (status)",
        """CREATE TABLE {schema}.events (
            workflow_id TEXT NOT NULL,
            last BIGINT NOT NULL,
            first BIGINT NOT NULL,
            data BYTEA NOT NULL,
            fact_ids TEXT[],
            PRIMARY KEY (workflow_id, last))""",
        "CREATE TABLE {schema}.contents (hash TEXT PRIMARY KEY, data BYTEA NOT NULL)",
        "CREATE TABLE {schema}.facts (fact_id TEXT PRIMARY KEY, hash TEXT NOT NULL)",
        """CREATE TABLE {schema}.snapshots (
            workflow_id TEXT PRIMARY KEY, cursor BIGINT NOT NULL, data BYTEA NOT NULL)""",
        """CREATE TABLE {schema}.timers (
            timer_id TEXT PRIMARY KEY,
            workflow_id TEXT NOT NULL,
            fire_at DOUBLE PRECISION NOT NULL,
            payload JSONB NOT NULL)""",
        "CREATE INDEX timers_fire_at ON {schema}.timers (fire_at)",
        "CREATE INDEX timers_workflow ON {schema}.timers (workflow_id, fire_at)",
        """CREATE TABLE {schema}.leases (
            workflow_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL)""",
    ),
    # 2: values no longer than their hash live in the fact's row (hash = '').
    ("ALTER TABLE {schema}.facts ADD COLUMN data BYTEA",),
    # 3: the lease moves into the instance row, with a fencing token (epoch) that an append
    # checks on the row it locks anyway; error says why a runner could not load it.
    (
        """ALTER TABLE {schema}.instances ADD COLUMN owner TEXT,
            ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0,
            ADD COLUMN lease_expires DOUBLE PRECISION NOT NULL DEFAULT 0,
            ADD COLUMN error TEXT""",
        """UPDATE {schema}.instances i SET owner = l.owner, lease_expires = l.expires_at,
            epoch = 1 FROM {schema}.leases l WHERE l.workflow_id = i.workflow_id""",
        "DROP TABLE {schema}.leases",
        "CREATE INDEX instances_lease ON {schema}.instances (lease_expires)",
    ),
]
"""Schema migrations in order; ``schema_version.version`` counts those applied."""

_META = (
    "workflow_id, definition_name, definition_hash, status, created_at, updated_at, cursor, "
    "metadata"
)
_META_READ = f"{_META}, owner, lease_expires, epoch, error"
QUERIES: dict[str, str] = {
    "insert_instance": f"""INSERT INTO {{schema}}.instances
        ({_META}, owner, epoch, lease_expires)
        VALUES (%s, %s, %s, %s, %s, %s, 0, %s, %s, %s, %s) ON CONFLICT (workflow_id) DO NOTHING
        RETURNING workflow_id""",
    "select_instance": f"SELECT {_META_READ} FROM {{schema}}.instances WHERE workflow_id = %s",
    "set_error": "UPDATE {schema}.instances SET error = %s WHERE workflow_id = %s",
    "select_epoch": "SELECT epoch FROM {schema}.instances WHERE workflow_id = %s",
    "select_instances": f"""SELECT {_META_READ} FROM {{schema}}.instances
        WHERE %s::text[] IS NULL OR status = ANY(%s::text[])
        ORDER BY created_at, workflow_id""",
    "select_cursor": "SELECT cursor FROM {schema}.instances WHERE workflow_id = %s",
    "update_status": """UPDATE {schema}.instances SET status = %s, updated_at = %s
        WHERE workflow_id = %s""",
    "append": """WITH inst AS (
            UPDATE {schema}.instances
            SET cursor = cursor + %(n)s, updated_at = %(now)s,
                status = COALESCE(%(status)s, status)
            WHERE workflow_id = %(wid)s AND (%(token)s::bigint IS NULL OR epoch = %(token)s)
            RETURNING cursor),
        ev AS (
            INSERT INTO {schema}.events (workflow_id, last, first, data, fact_ids)
            SELECT %(wid)s, cursor, cursor - %(n)s + 1, %(data)s, %(fact_ids)s
            FROM inst WHERE %(n)s > 0),
        ct AS (
            INSERT INTO {schema}.contents (hash, data)
            SELECT h, d FROM unnest(%(hashes)s::text[], %(blobs)s::bytea[]) AS u (h, d)
            WHERE EXISTS (SELECT 1 FROM inst)
            ON CONFLICT (hash) DO NOTHING),
        fa AS (
            INSERT INTO {schema}.facts (fact_id, hash, data)
            SELECT f, h, d
            FROM unnest(%(fids)s::text[], %(fhashes)s::text[], %(fdata)s::bytea[]) AS u (f, h, d)
            WHERE EXISTS (SELECT 1 FROM inst)
            ON CONFLICT (fact_id) DO UPDATE SET hash = EXCLUDED.hash, data = EXCLUDED.data)
        SELECT cursor FROM inst""",
    "select_events": """SELECT first, data, fact_ids, last FROM {schema}.events
        WHERE workflow_id = %s AND last > %s ORDER BY last LIMIT %s""",
    "insert_content": """INSERT INTO {schema}.contents (hash, data) VALUES (%s, %s)
        ON CONFLICT (hash) DO NOTHING""",
    "upsert_fact": """INSERT INTO {schema}.facts (fact_id, hash, data) VALUES (%s, %s, %s)
        ON CONFLICT (fact_id) DO UPDATE SET hash = EXCLUDED.hash, data = EXCLUDED.data""",
    "select_fact_values": """SELECT f.fact_id, COALESCE(f.data, c.data) FROM {schema}.facts f
        LEFT JOIN {schema}.contents c ON c.hash = f.hash
        WHERE f.fact_id = ANY(%s) AND COALESCE(f.data, c.data) IS NOT NULL""",
    "upsert_snapshot": """INSERT INTO {schema}.snapshots (workflow_id, cursor, data)
        VALUES (%s, %s, %s) ON CONFLICT (workflow_id)
        DO UPDATE SET cursor = EXCLUDED.cursor, data = EXCLUDED.data""",
    "select_snapshot": "SELECT cursor, data FROM {schema}.snapshots WHERE workflow_id = %s",
    "upsert_timer": """INSERT INTO {schema}.timers (timer_id, workflow_id, fire_at, payload)
        VALUES (%s, %s, %s, %s) ON CONFLICT (timer_id) DO UPDATE SET
        workflow_id = EXCLUDED.workflow_id, fire_at = EXCLUDED.fire_at,
        payload = EXCLUDED.payload""",
    "select_due_timers": """SELECT timer_id, workflow_id, fire_at, payload FROM {schema}.timers
        WHERE fire_at <= %s ORDER BY fire_at, timer_id LIMIT %s""",
    "select_owned_due_timers": """SELECT t.timer_id, t.workflow_id, t.fire_at, t.payload
        FROM {schema}.timers t JOIN {schema}.instances i ON i.workflow_id = t.workflow_id
        WHERE t.fire_at <= %s AND i.owner = %s AND i.lease_expires > %s
        ORDER BY t.fire_at, t.timer_id LIMIT %s""",
    "select_timers": """SELECT timer_id, workflow_id, fire_at, payload FROM {schema}.timers
        WHERE workflow_id = %s ORDER BY fire_at, timer_id""",
    "select_next_timer": "SELECT MIN(fire_at) FROM {schema}.timers",
    "delete_timer": "DELETE FROM {schema}.timers WHERE timer_id = %s",
    "lock_lease": """SELECT owner, lease_expires, epoch FROM {schema}.instances
        WHERE workflow_id = %s FOR UPDATE""",
    "grant_lease": """UPDATE {schema}.instances SET owner = %s, lease_expires = %s, epoch = %s
        WHERE workflow_id = %s""",
    "renew_lease": """UPDATE {schema}.instances SET lease_expires = %s
        WHERE workflow_id = %s AND owner = %s AND lease_expires > %s""",
    "renew_leases": """UPDATE {schema}.instances SET lease_expires = %s
        WHERE owner = %s AND lease_expires > %s RETURNING workflow_id, epoch""",
    "release_lease": """UPDATE {schema}.instances SET owner = NULL, lease_expires = 0
        WHERE workflow_id = %s AND owner = %s""",
    "select_lease": """SELECT owner FROM {schema}.instances
        WHERE workflow_id = %s AND owner IS NOT NULL AND lease_expires > %s""",
    "live_owners": """SELECT DISTINCT owner FROM {schema}.instances
        WHERE lease_expires > %s AND owner IS NOT NULL ORDER BY owner""",
    "claim": """WITH c AS (
            SELECT workflow_id FROM {schema}.instances
            WHERE workflow_id IN (
                SELECT workflow_id FROM {schema}.instances WHERE status = 'running'
                UNION SELECT workflow_id FROM {schema}.timers WHERE fire_at <= %(due)s)
            AND (owner IS NULL OR lease_expires <= %(now)s OR owner = ANY(%(dead)s))
            AND NOT (workflow_id = ANY(%(exclude)s))
            ORDER BY updated_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
        UPDATE {schema}.instances i
        SET owner = %(owner)s, lease_expires = %(until)s, epoch = i.epoch + 1
        FROM c WHERE i.workflow_id = c.workflow_id RETURNING i.workflow_id, i.epoch""",
    "stats": """SELECT (SELECT COUNT(*) FROM {schema}.instances),
        (SELECT COALESCE(SUM(cursor), 0) FROM {schema}.instances),
        (SELECT COUNT(*) FROM {schema}.facts), (SELECT COUNT(*) FROM {schema}.contents)""",
    "corrupt_event": """UPDATE {schema}.events
        SET data = substring(data FROM 1 FOR length(data) / 2)
        WHERE workflow_id = %s AND first <= %s AND last >= %s""",
    **{
        f"delete_{table}": f"DELETE FROM {{schema}}.{table} WHERE workflow_id = %s"
        for table in ("events", "snapshots", "timers", "instances")
    },
}
"""Every statement the store sends, with ``{schema}`` standing for the quoted schema."""

_READS = frozenset(
    name for name in QUERIES if name.startswith("select") or name in ("live_owners", "stats")
)
"""Statements that only read, so that a failed attempt may be repeated."""

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_BATCH_ROWS = 512

# The password of a URL (``scheme://user:password@host``: up to the last ``@``, so that an
# unencoded ``@`` or ``/`` in it is masked too), of a URL query (``?password=...``) and of a
# ``key=value`` connection string (``password=secret`` or ``password='quoted secret'``).
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*:)(.*)@", re.S)
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.I)
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)", re.I)


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***``, fit to show in a message.

    Handles ``postgresql://user:password@host/db`` URLs (and ``?password=`` in their query)
    and ``key=value`` connection strings (``password=...``, quoted or not).
    """
    if "://" in dsn:
        masked = _URL_PASSWORD.sub(r"\1***@", dsn, count=1)
        return _QUERY_PASSWORD.sub(r"\1***", masked)
    return _KEYWORD_PASSWORD.sub(r"\1***", dsn)


def _dsn_passwords(dsn: str) -> set[str]:
    """Every spelling of the password(s) ``dsn`` holds: raw, percent-decoded, unquoted."""
    found: set[str] = set()
    if "://" in dsn:
        url = _URL_PASSWORD.match(dsn)
        raw = [url.group(2)] if url else []
        raw += [m.group(2) for m in _QUERY_PASSWORD.finditer(dsn)]
        found.update(raw, (unquote(r) for r in raw))
    else:
        for m in _KEYWORD_PASSWORD.finditer(dsn):
            value = m.group(2)
            found.add(value)
            if value.startswith("'"):
                inner = value[1:-1] if len(value) > 1 and value.endswith("'") else value[1:]
                found.update((inner, re.sub(r"\\(.)", r"\1", inner)))
    if psycopg is not None:
        try:
            password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
        except psycopg.Error:
            password = None
        if password:
            found.add(str(password))
    found.discard("")
    return found


def mask_password(text: str, dsn: str) -> str:
    """``text`` (a driver's error message, say) with every trace of ``dsn``'s password masked.

    The DSN itself, quoted whole (libpq quotes a URL it cannot parse), becomes
    :func:`mask_dsn` of it; then any remaining spelling of the password becomes ``***``.
    """
    if not dsn:
        return text
    text = text.replace(dsn, mask_dsn(dsn))
    for secret in sorted(_dsn_passwords(dsn), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _one_line(text: str) -> str:
    """A multi-line libpq message on one line: hint lines (indented) join the line above."""
    parts: list[str] = []
    for line in text.strip().splitlines():
        if not line.strip():
            continue
        if parts and line[:1].isspace():
            end = "" if parts[-1][-1:] in ".?!:;" else "."
            parts[-1] += f"{end} {line.strip()}"
        else:
            parts.append(line.strip())
    return re.sub(r"\s+", " ", "; ".join(parts))


def _check_connect(dsn: str, seconds: int) -> None:
    """Open and close one connection, so that a store that cannot connect fails now, with why.

    Raises:
        StoreError: the connection failed; the message names the target (password masked),
            gives the driver's reason and says what to check.
    """
    try:
        psycopg.connect(dsn, connect_timeout=seconds).close()
    except psycopg.Error as exc:
        raw = str(exc)
        reason = _one_line(mask_password(raw, dsn)).removeprefix("connection failed: ")
        end = "" if reason[-1:] in ".?!" else "."
        error = StoreError(
            f"cannot open the PostgreSQL store at {mask_dsn(dsn)!r} "
            f"(connect_timeout={seconds}s): {reason}{end} Check that the server is running and "
            "reachable, and that the URL's host, port, user, password and database are right."
        )
        # Chain the driver's error only when it holds no password (its message may quote the
        # whole URL, say when libpq cannot parse it).
        if mask_password(raw, dsn) == raw:
            raise error from exc
        raise error from None


class PostgresStore(Store):
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
            _check_connect(dsn or "", seconds)
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
        self._q = {name: _compose(text, schema) for name, text in QUERIES.items()}
        if auto_setup:
            self.setup()

    # --- connections ------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Connection[Any]]:
        """Lend a pooled connection; database failures become :class:`StoreError`."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailableError(
                f"PostgreSQL store (schema {self.schema!r}) unavailable: {_one_line(str(exc))}"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store (schema {self.schema!r}) failed: {exc}") from exc

    def _fetchall(self, name: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self._query(name, params, all_rows=True)

    def _fetchone(self, name: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self._query(name, params, all_rows=False)

    def _query(self, name: str, params: Sequence[Any] | dict[str, Any], *, all_rows: bool) -> Any:
        """Run one statement. A read that meets a dead pooled connection (the server was
        restarted) is retried on a fresh one; a write never is (its outcome is unknown)."""
        attempts = 3 if name in _READS else 1
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
            StoreError: the schema was written by a newer runeflow (upgrade runeflow).
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
                conn.execute(self._q["append"], append)
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
        return _meta(row)

    def list(self, status: str | Collection[str] | None = None) -> builtins.list[InstanceMeta]:
        """See :meth:`Store.list`."""
        wanted = None if status is None else [status] if isinstance(status, str) else [*status]
        return [_meta(r) for r in self._fetchall("select_instances", (wanted, wanted))]

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
            for table in ("events", "snapshots", "timers", "instances"):
                conn.execute(self._q[f"delete_{table}"], (workflow_id,))

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
        params = self._append_params(workflow_id, events, status, token)
        row = self._fetchone("append", params)
        if row is not None:
            return int(row[0])
        current = self._fetchone("select_epoch", (workflow_id,))
        if current is not None and token is not None and current[0] != token:
            raise LeaseLostError(workflow_id, token, f"; it is at {current[0]}")
        raise StoreError(
            f"cannot append to unknown workflow {workflow_id!r}: create() it first",
            workflow_id=workflow_id,
        )

    def _append_params(
        self, workflow_id: str, events: Sequence[Event], status: str | None, token: int | None
    ) -> dict[str, Any]:
        """The parameters of the ``append`` statement (events encoded, values kept apart)."""
        encoded = self._encode_append(events) if events else None
        # One row per fact: (id, content hash, NULL) or, for an inline value, (id, '', value).
        facts: list[tuple[str, str, bytes | None]] = []
        if encoded is not None:
            facts += [(fid, digest, None) for fid, digest in encoded.fact_hashes.items()]
            facts += [(fid, "", data) for fid, data in encoded.inline.items()]
        return {
            "wid": workflow_id,
            "n": encoded.count if encoded else 0,
            "now": time.time(),
            "status": status,
            "token": token,
            "data": encoded.blob if encoded else None,
            "fact_ids": list(encoded.fact_ids) if encoded and encoded.fact_ids else None,
            "hashes": list(encoded.contents) if encoded else [],
            "blobs": list(encoded.contents.values()) if encoded else [],
            "fids": [f[0] for f in facts],
            "fhashes": [f[1] for f in facts],
            "fdata": [f[2] for f in facts],
        }

    def stream(self, workflow_id: str, after: int = 0, *, values: bool = True) -> Iterator[Event]:
        """See :meth:`Store.stream`."""
        if not self.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id)
        return self._stream(workflow_id, after, values)

    def _stream(self, workflow_id: str, after: int, values: bool) -> Iterator[Event]:
        position = after
        while True:
            rows = self._fetchall("select_events", (workflow_id, position, _BATCH_ROWS))
            if not rows:
                return
            loader = self._batch_loader(rows) if values else None
            for chunk in _log_chunks(rows):
                yield from self._decode_chunk(workflow_id, chunk, after, loader)
            if len(rows) < _BATCH_ROWS:
                return
            position = rows[-1][3]

    def _batch_loader(self, rows: builtins.list[Any]) -> Any:
        ids = [fid for r in rows if r[2] for fid in r[2]]
        found: dict[str, bytes] = (
            {fid: bytes(data) for fid, data in self._fetchall("select_fact_values", (ids,))}
            if ids
            else {}
        )
        values = self._decode_values(found)

        def load(fact_id: str) -> Any:
            if fact_id in values:
                return values.pop(fact_id)
            return self.load_fact(fact_id)  # appended as a FactRef: its value was saved apart

        return load

    def cursor(self, workflow_id: str) -> int:
        """See :meth:`Store.cursor`."""
        row = self._fetchone("select_cursor", (workflow_id,))
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        return int(row[0])

    # --- snapshots --------------------------------------------------------------------------

    def save_snapshot(self, workflow_id: str, cursor: int, snapshot: bytes) -> None:
        """See :meth:`Store.save_snapshot`."""
        self._execute("upsert_snapshot", (workflow_id, cursor, bytes(snapshot)))

    def load_snapshot(self, workflow_id: str) -> tuple[int, bytes] | None:
        """See :meth:`Store.load_snapshot`."""
        row = self._fetchone("select_snapshot", (workflow_id,))
        return (int(row[0]), bytes(row[1])) if row is not None else None

    # --- facts ------------------------------------------------------------------------------

    def save_fact(self, fact_id: str, value: Any) -> None:
        """See :meth:`Store.save_fact`."""
        data = self.codec.encode(value)
        digest = content_key(data)
        with self._connection() as conn, conn.transaction():
            if digest is None:
                conn.execute(self._q["upsert_fact"], (fact_id, "", data))
                return
            conn.execute(self._q["insert_content"], (digest, data))
            conn.execute(self._q["upsert_fact"], (fact_id, digest, None))

    def load_fact(self, fact_id: str) -> Any:
        """See :meth:`Store.load_fact`."""
        rows = self._fetchall("select_fact_values", ([fact_id],))
        if not rows:
            raise StoreError(f"no value is stored for fact {fact_id!r}")
        return self._decode_value(fact_id, bytes(rows[0][1]))

    def load_facts(self, fact_ids: Sequence[str]) -> dict[str, Any]:
        """See :meth:`Store.load_facts`."""
        ids = list(dict.fromkeys(fact_ids))
        if not ids:
            return {}
        rows = self._fetchall("select_fact_values", (ids,))
        found = {fid: bytes(data) for fid, data in rows}
        missing = [fid for fid in ids if fid not in found]
        if missing:
            raise StoreError(f"no value is stored for fact {missing[0]!r} ({len(missing)} missing)")
        return self._decode_values({fid: found[fid] for fid in ids})

    def stats(self) -> dict[str, int]:
        """See :meth:`Store.stats`."""
        row = self._fetchone("stats")
        return {
            key: int(value)
            for key, value in zip(("instances", "events", "facts", "contents"), row, strict=True)
        }

    # --- timers -----------------------------------------------------------------------------

    def schedule_timer(self, timer: Timer) -> None:
        """See :meth:`Store.schedule_timer`."""
        self._execute("upsert_timer", _timer_params(timer))

    def due_timers(
        self, now: float, limit: int = 100, *, owner: str | None = None
    ) -> builtins.list[Timer]:
        """See :meth:`Store.due_timers`."""
        if owner is None:
            rows = self._fetchall("select_due_timers", (now, limit))
        else:
            rows = self._fetchall("select_owned_due_timers", (now, owner, time.time(), limit))
        return [_timer(r) for r in rows]

    def cancel_timer(self, timer_id: str) -> bool:
        """See :meth:`Store.cancel_timer`."""
        return self._execute("delete_timer", (timer_id,)) == 1

    def timers(self, workflow_id: str) -> builtins.list[Timer]:
        """See :meth:`Store.timers`."""
        return [_timer(r) for r in self._fetchall("select_timers", (workflow_id,))]

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
        rows = self._fetchall("renew_leases", (now + ttl, owner, now))
        return {wid: int(epoch) for wid, epoch in rows}

    def release_lease(self, workflow_id: str, owner: str) -> None:
        """See :meth:`Store.release_lease`."""
        self._execute("release_lease", (workflow_id, owner))

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


def _meta(row: Any) -> InstanceMeta:
    return InstanceMeta(
        workflow_id=row[0],
        definition_name=row[1],
        definition_hash=row[2],
        status=row[3],
        created_at=row[4],
        updated_at=row[5],
        cursor=row[6],
        metadata=row[7] if isinstance(row[7], dict) else json.loads(row[7]),
        owner=row[8] if row[8] is not None and row[9] > time.time() else None,
        epoch=int(row[10]),
        error=row[11],
    )


def _timer(row: Any) -> Timer:
    payload = row[3] if isinstance(row[3], dict) else json.loads(row[3])
    return Timer(timer_id=row[0], workflow_id=row[1], fire_at=row[2], payload=payload)
