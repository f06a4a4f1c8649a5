"""The transactions of :class:`~runeflow.stores.sqlite.SQLiteStore` that bound a store:
fenced snapshots, compaction of a log up to its snapshot, deletion of instances with the
facts and values only they refer to. Each runs under the write lock, in the caller's
transaction (see :meth:`~runeflow.stores.base.Store.compact` and ``prune``)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from runeflow.errors import LeaseLostError, StoreError, WorkflowNotFoundError
from runeflow.stores import _sqlite_sql as q
from runeflow.stores.integrity import RESTORE_ADVICE, snapshot_ahead, snapshot_before_log

__all__ = ["EVERY", "collect", "compact", "fenced", "id_set", "position", "remove"]

EVERY = 2**62
"""A position after any event: "the whole log"."""


def position(workflow_id: str, value: Any) -> int:
    """The last position of a log as stored; a damaged one is a :class:`StoreError`."""
    if type(value) is not int:
        raise StoreError(
            f"cannot read the log of workflow {workflow_id!r}: its last stored position is "
            f"{value!r}, not a number, so the log is corrupt: {RESTORE_ADVICE}",
            workflow_id=workflow_id,
        )
    return value


def fenced(
    conn: sqlite3.Connection, workflow_id: str, token: int | None, snapshot: int | None = None
) -> None:
    """Check, under the write lock, that the instance exists and ``token`` is still its
    fencing token, and that a snapshot at position ``snapshot`` is not before the start of
    its compacted log."""
    row = conn.execute(q.SELECT_FENCE, (workflow_id,)).fetchone()
    if row is None:
        raise WorkflowNotFoundError(workflow_id)
    if token is not None and token != row[0]:
        raise LeaseLostError(workflow_id, token, f"; it is at {row[0]}")
    start = position(workflow_id, row[1])
    if snapshot is not None and snapshot < start:
        raise snapshot_before_log(workflow_id, snapshot, start)


def compact(conn: sqlite3.Connection, workflow_id: str, token: int | None) -> int:
    """Remove the log rows the instance's snapshot covers (see ``Store.compact``)."""
    fenced(conn, workflow_id, token)
    snap = conn.execute(q.SELECT_SNAPSHOT_REFS, (workflow_id,)).fetchone()
    if snap is None:
        return 0
    upto = position(workflow_id, snap[0])
    count, last, at, end = conn.execute(q.SELECT_COMPACTABLE, (workflow_id, upto)).fetchone()
    if not count:
        return 0
    last, end = position(workflow_id, last), position(workflow_id, end)
    if upto > end:
        raise snapshot_ahead(workflow_id, upto, end)
    kept = id_set(snap[1])
    facts = []
    if kept is not None:  # a snapshot that lists its facts: collect the others
        facts = conn.execute(q.SELECT_OWNED_FACTS, (workflow_id, last, 0)).fetchall()
        facts = [row for row in facts if row[0] not in kept]
    conn.execute(q.DELETE_COMPACTED, (workflow_id, last))
    conn.execute(q.SET_COMPACTED, (last, at if type(at) in (int, float) else 0, workflow_id))
    collect(conn, facts)
    return int(count)


def remove(conn: sqlite3.Connection, workflow_id: str) -> None:
    """Delete an instance with the facts only it refers to (under the write lock)."""
    facts = conn.execute(q.SELECT_OWNED_FACTS, (workflow_id, EVERY, 1)).fetchall()
    for statement in q.DELETE_INSTANCE:
        conn.execute(statement, (workflow_id,))
    collect(conn, facts)


def collect(conn: sqlite3.Connection, facts: list[Any]) -> None:
    """Delete the fact rows ``(fact_id, hash)``, then the contents no fact uses any more."""
    if not facts:
        return
    conn.executemany(q.DELETE_FACT, [(row[0],) for row in facts])
    hashes = {row[1] for row in facts if type(row[1]) is str and row[1]}
    conn.executemany(q.DELETE_UNUSED_CONTENT, [(h,) for h in hashes])


def id_set(text: Any) -> set[str] | None:
    """The fact ids a snapshot row lists; ``None`` when it lists none (or is unreadable)."""
    if type(text) is not str:
        return None
    try:
        ids = json.loads(text)
    except ValueError:
        return None
    return {i for i in ids if type(i) is str} if type(ids) is list else None
