"""How :class:`~runeflow.stores.sqlite.SQLiteStore` writes a batch of creates and appends in
one transaction (see :mod:`runeflow.stores.batching`): each one checked on its own, the rows
of all of them inserted with one statement per table."""

from __future__ import annotations

import builtins
import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

from runeflow.errors import LeaseLostError, StoreError
from runeflow.stores import _sqlite_sql as q
from runeflow.stores._sqlite_bounded import position
from runeflow.stores.encoding import EncodedAppend
from runeflow.stores.integrity import checksum

__all__ = ["KNOWN_INSTANCES", "AppendStates", "Pending", "write_batch", "write_lone"]

_MAX_PARAMS = 500
"""Instances whose state one query reads (SQLite limits a statement's parameters)."""


class Pending:
    """One append, encoded, waiting to be written."""

    __slots__ = ("done", "encoded", "instance", "status", "timers", "token", "workflow_id")

    def __init__(
        self,
        workflow_id: str,
        encoded: EncodedAppend | None,
        status: str | None,
        token: int | None,
        timers: Sequence[tuple[str, str, float, str]],
        done: Sequence[str],
        instance: tuple[Any, ...] | None = None,
    ) -> None:
        self.workflow_id = workflow_id
        self.encoded = encoded
        self.status = status
        self.token = token
        self.timers = timers
        self.done = done
        self.instance = instance
        """For a create: the instance row to insert first (its events then follow)."""


KNOWN_INSTANCES = 4096
"""The most instances whose append state one connection keeps (see :class:`AppendStates`)."""


class AppendStates:
    """What one connection knows of the instances it appended to: each one's last position,
    fencing token and status, as its own last append left them.

    An append must read them under the write lock (a stale token is refused, the position
    comes next). Reading them costs a query per append, about a tenth of a lone append's
    time; a connection that appends to an instance again and again (a running instance's
    checkpoints) knows them already, as long as nothing else wrote meanwhile. So they are
    kept, and trusted only while ``PRAGMA data_version`` (which changes when another
    connection commits) is what it was, and forgotten whenever this connection does
    anything but a lone append (a lease, a status, a compaction, a batch) or fails one.
    """

    __slots__ = ("states", "version")

    def __init__(self) -> None:
        self.version: int | None = None
        self.states: dict[str, tuple[int, Any, Any]] = {}

    def forget(self) -> None:
        """Trust nothing known so far."""
        if self.states:
            self.states.clear()
        self.version = None

    def keep(self, workflow_id: str, state: tuple[int, Any, Any]) -> None:
        """Note what an append left (at most :data:`KNOWN_INSTANCES` instances at a time)."""
        states = self.states
        if len(states) >= KNOWN_INSTANCES and workflow_id not in states:
            states.clear()  # the instances being checkpointed now come back soon enough
        states[workflow_id] = state

    def get(self, conn: sqlite3.Connection, workflow_id: str) -> tuple[int, Any, Any] | None:
        """The instance's ``(position, token, status)`` if still known (hold the write lock)."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version:
            self.states.clear()
            self.version = version
            return None
        return self.states.get(workflow_id)


class _LogWrites:
    """The rows that appends add: log rows and fact values, written with one
    ``executemany`` per table."""

    __slots__ = ("contents", "events", "fact_hashes", "inline")

    def __init__(self) -> None:
        self.events: builtins.list[tuple[Any, ...]] = []
        self.inline: builtins.list[tuple[str, bytes, int, str]] = []
        self.contents: dict[str, bytes] = {}
        self.fact_hashes: builtins.list[tuple[str, str, str]] = []

    def add(self, workflow_id: str, cursor: int, encoded: EncodedAppend, now: float) -> int:
        """Add one encoded append after position ``cursor``; return the new last position."""
        first, cursor = cursor + 1, cursor + encoded.count
        blob = encoded.blob
        self.events.append(
            (workflow_id, cursor, first, blob, encoded.fact_ids_text, now, checksum(blob))
        )
        if encoded.inline:
            self.inline += [(fid, d, checksum(d), workflow_id) for fid, d in encoded.inline.items()]
        if encoded.contents:
            self.contents.update(encoded.contents)
            self.fact_hashes += [(fid, h, workflow_id) for fid, h in encoded.fact_hashes.items()]
        return cursor

    def write(self, conn: sqlite3.Connection) -> None:
        """Insert the rows (in a write transaction)."""
        _insert(conn, q.INSERT_EVENTS, self.events)
        _insert(conn, q.UPSERT_INLINE_FACT, self.inline)
        if self.contents:
            conn.executemany(q.INSERT_CONTENT, self.contents.items())
            conn.executemany(q.UPSERT_FACT, self.fact_hashes)


def _insert(conn: sqlite3.Connection, statement: str, rows: builtins.list[Any]) -> None:
    if len(rows) == 1:  # one row, the usual case: execute costs less than executemany
        conn.execute(statement, rows[0])
    elif rows:
        conn.executemany(statement, rows)


@functools.lru_cache(maxsize=64)
def _state_query(n: int) -> str:
    """:data:`~runeflow.stores._sqlite_sql.SELECT_APPEND_STATE` for ``n`` instances."""
    return q.SELECT_APPEND_STATE.format(marks=",".join("?" * n))


def write_batch(
    conn: sqlite3.Connection, batch: builtins.list[Pending], now: float
) -> builtins.list[int | Exception]:
    """Write a batch of creates and appends (under the write lock); each one is checked on
    its own. A create whose id is taken writes nothing and gives -1."""
    if len(batch) == 1:
        return [write_lone(conn, batch[0], now)]
    taken: set[int] = set()
    for i, p in enumerate(batch):
        if p.instance is not None and conn.execute(q.INSERT_INSTANCE, p.instance).rowcount != 1:
            taken.add(i)
    state: dict[str, builtins.list[Any]] = {}
    ids = builtins.list(dict.fromkeys(p.workflow_id for p in batch))
    for start in range(0, len(ids), _MAX_PARAMS):
        chunk = ids[start : start + _MAX_PARAMS]
        for wid, last, epoch, status in conn.execute(_state_query(len(chunk)), chunk):
            state[wid] = [last, epoch, status]
    log = _LogWrites()
    statuses: dict[str, str] = {}
    timers: dict[str, tuple[str, str, float, str] | None] = {}  # the last change wins
    results: builtins.list[int | Exception] = []
    for i, p in enumerate(batch):
        if i in taken:
            results.append(-1)
            continue
        wid = p.workflow_id
        st = state.get(wid)
        if st is None:
            results.append(
                StoreError(
                    f"cannot append to unknown workflow {wid!r}: create() it first",
                    workflow_id=wid,
                )
            )
            continue
        try:
            cursor = position(wid, st[0])
        except StoreError as exc:
            results.append(exc)
            continue
        if p.token is not None and p.token != st[1]:
            results.append(LeaseLostError(wid, p.token, f"; it is at {st[1]}"))
            continue
        if p.status is not None and p.status != st[2]:
            statuses[wid] = st[2] = p.status
        if p.encoded is not None:
            cursor = st[0] = log.add(wid, cursor, p.encoded, now)
        for row in p.timers:
            timers[row[0]] = row
        for timer_id in p.done:
            timers[timer_id] = None
        results.append(cursor)
    log.write(conn)
    if statuses:
        conn.executemany(q.UPDATE_STATUS, [(st, now, wid) for wid, st in statuses.items()])
    if timers:
        conn.executemany(q.UPSERT_TIMER, [row for row in timers.values() if row is not None])
        conn.executemany(q.DELETE_TIMER, [(tid,) for tid, row in timers.items() if row is None])
    return results


def write_lone(
    conn: sqlite3.Connection, p: Pending, now: float, known: AppendStates | None = None
) -> int | Exception:
    """:func:`write_batch` for a batch of one (the usual case when appends do not overlap):
    the same checks and rows, with fewer containers; ``known`` saves reading the instance's
    state again (see :class:`AppendStates`)."""
    if p.instance is not None:
        return _create_one(conn, p, now)
    return _write_one(conn, p, now, known)


def _create_one(conn: sqlite3.Connection, p: Pending, now: float) -> int:
    """:func:`write_batch` for one create alone: the instance row, then its first events
    at position 0 (nothing to check: nobody else can have written to it)."""
    assert p.instance is not None
    if conn.execute(q.INSERT_INSTANCE, p.instance).rowcount != 1:
        return -1
    cursor = 0 if p.encoded is None else _write_log(conn, p.workflow_id, 0, p.encoded, now)
    if p.timers:
        conn.executemany(q.UPSERT_TIMER, p.timers)
    return cursor


def _write_one(
    conn: sqlite3.Connection, p: Pending, now: float, known: AppendStates | None = None
) -> int | Exception:
    """:func:`_write_batch` for one append alone, the usual case when appends do not
    overlap: the same checks and rows, with fewer containers."""
    wid = p.workflow_id
    state = None if known is None else known.get(conn, wid)
    if state is None:
        row = conn.execute(q.SELECT_APPEND_STATE_ONE, (wid,)).fetchone()
        if row is None:
            return StoreError(
                f"cannot append to unknown workflow {wid!r}: create() it first", workflow_id=wid
            )
        try:
            state = (position(wid, row[0]), row[1], row[2])
        except StoreError as exc:
            return exc
    cursor, token, status = state
    if p.token is not None and p.token != token:
        return LeaseLostError(wid, p.token, f"; it is at {token}")
    if p.status is not None and p.status != status:
        conn.execute(q.UPDATE_STATUS, (p.status, now, wid))
        status = p.status
    if p.encoded is not None:
        cursor = _write_log(conn, wid, cursor, p.encoded, now)
    if p.timers:
        conn.executemany(q.UPSERT_TIMER, p.timers)
    if p.done:
        conn.executemany(q.DELETE_TIMER, [(timer_id,) for timer_id in p.done])
    if known is not None:  # kept once all is written (a failed commit forgets it)
        known.keep(wid, (cursor, token, status))
    return cursor


def _write_log(
    conn: sqlite3.Connection, workflow_id: str, cursor: int, encoded: EncodedAppend, now: float
) -> int:
    """:meth:`_LogWrites.add` then ``write`` for a lone append, without the containers (the
    usual case: a few microseconds less per checkpoint); return the new last position."""
    first, cursor = cursor + 1, cursor + encoded.count
    blob = encoded.blob
    conn.execute(
        q.INSERT_EVENTS,
        (workflow_id, cursor, first, blob, encoded.fact_ids_text, now, checksum(blob)),
    )
    inline = encoded.inline
    if len(inline) == 1:
        [(fid, data)] = inline.items()
        conn.execute(q.UPSERT_INLINE_FACT, (fid, data, checksum(data), workflow_id))
    elif inline:
        conn.executemany(
            q.UPSERT_INLINE_FACT, [(f, d, checksum(d), workflow_id) for f, d in inline.items()]
        )
    if encoded.contents:
        conn.executemany(q.INSERT_CONTENT, encoded.contents.items())
        conn.executemany(
            q.UPSERT_FACT, [(fid, h, workflow_id) for fid, h in encoded.fact_hashes.items()]
        )
    return cursor
