"""Integrity of stored data: checksums written beside every blob, verified on every read.

Store contents are untrusted input: a failing disk, a bad copy or a hand-made ``UPDATE`` can
change them. The durable stores (SQLite, PostgreSQL) therefore keep a checksum with each blob
they store and check it whenever they read the blob back:

* an event-log row and a snapshot carry the CRC-32 (:func:`zlib.crc32`) of their blob, in a
  ``checksum`` column (schema version 4);
* a fact value kept in the fact's own row carries the CRC-32 of the value, likewise;
* a value kept in the content table is checked against its key, the SHA-256 of the value
  (:func:`~runeflow.stores.base.content_hash`), which needs no extra column and also covers
  rows written before checksums existed.

CRC-32 detects every burst of up to 32 flipped bits and all but one in 2**32 other damage,
at a fraction of a microsecond per row. It guards against accidents, not forgery: whoever
can write the database can write a matching checksum. Rows written before schema version 4
have no checksum (``NULL``) and are read unverified, as before; new rows always carry one.

Besides the checksums, a log read checks that the rows follow each other (no event missing,
none twice) and that each row holds as many events as its positions say. Any mismatch
raises :class:`~runeflow.errors.StoreError` naming the instance and the position (or the
fact), never a wrong value.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

from runeflow.errors import StoreError

__all__ = [
    "RESTORE_ADVICE",
    "STATUSES",
    "as_bytes",
    "checksum",
    "compacted_log",
    "corrupt_fact",
    "corrupt_log",
    "corrupt_snapshot",
    "log_read_failed",
    "row_checksum_mismatch",
    "snapshot_ahead",
    "snapshot_before_log",
    "verified_snapshot",
    "verified_values",
]

checksum = zlib.crc32
"""``checksum(data) -> int``: the CRC-32 of a stored blob (0 to 2**32 - 1)."""

STATUSES = frozenset({"running", "waiting", "idle", "failed", "stopped"})
"""The instance statuses runeflow writes (``runeflow.Status``); a stored row holding any
other status is flagged as unreadable."""

RESTORE_ADVICE = "restore the database from a backup, or delete the instance (Store.delete)"
"""What to do about a corrupt instance, for error messages."""


def as_bytes(value: Any) -> bytes:
    """A stored blob as bytes. A typeless database may hand back text (the same bytes, once
    encoded) or anything else (returned as ``b""``, which no check or decoder accepts)."""
    if type(value) is bytes:
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return b""


def corrupt_log(workflow_id: str, position: int, why: str) -> StoreError:
    """The error for a damaged log: ``why`` says what is wrong at event ``position``."""
    return StoreError(
        f"cannot read event {position} of workflow {workflow_id!r}: the stored log is "
        f"corrupt ({why}). Nothing from this event on can be trusted: {RESTORE_ADVICE}; "
        "other workflows stay readable",
        workflow_id=workflow_id,
        cursor=position,
    )


def compacted_log(workflow_id: str, after: int, start: Any) -> StoreError:
    """The error for reading a compacted log from event ``after + 1``, before its start.

    ``start`` is the position up to which events were removed (a damaged, non-numeric one
    is said to be damaged instead).
    """
    if type(start) is not int:
        return StoreError(
            f"cannot read the log of workflow {workflow_id!r}: the position where its "
            f"compacted log starts is {start!r}, not a number, so the log is corrupt: "
            f"{RESTORE_ADVICE}",
            workflow_id=workflow_id,
        )
    return StoreError(
        f"cannot read event {after + 1} of workflow {workflow_id!r}: events 1-{start} were "
        f"compacted into its snapshot (Runner(compact=True)), the log starts at event "
        f"{start + 1}. Load the instance from its snapshot (the default; not "
        f"use_snapshot=False), or read the log from there: stream(after={start})",
        workflow_id=workflow_id,
        cursor=after + 1,
    )


def log_read_failed(workflow_id: str, position: int, exc: StoreError) -> StoreError:
    """The error for a store failure while reading a log after event ``position``."""
    return StoreError(
        f"cannot read the log of workflow {workflow_id!r} after event {position}: {exc}",
        workflow_id=workflow_id,
        cursor=position + 1,
    )


def row_checksum_mismatch(workflow_id: str, first: int, last: int) -> StoreError:
    """The error for a log row (events ``first`` to ``last``) whose checksum does not match."""
    return corrupt_log(
        workflow_id,
        first,
        f"the checksum of the row holding events {first}-{last} does not match its data: the "
        "storage was damaged or the row was changed outside runeflow",
    )


def snapshot_ahead(workflow_id: str, snapshot: int, end: int) -> StoreError:
    """The error for compacting a log whose snapshot is ahead of it (nothing is removed)."""
    return StoreError(
        f"cannot compact the log of workflow {workflow_id!r}: its snapshot (cursor "
        f"{snapshot}) is ahead of its log (cursor {end}), so it cannot stand for the events "
        "it would remove. Save a snapshot of the instance as it is now",
        workflow_id=workflow_id,
        cursor=snapshot,
    )


def snapshot_before_log(workflow_id: str, snapshot: int, start: int) -> StoreError:
    """The error for a snapshot older than the start of a compacted log (nothing written)."""
    return StoreError(
        f"cannot keep a snapshot of workflow {workflow_id!r} at cursor {snapshot}: its log "
        f"was compacted up to event {start}, so the events between them are gone and the "
        "snapshot could never be brought up to date. Take the snapshot of the instance as "
        "it is now",
        workflow_id=workflow_id,
        cursor=snapshot,
    )


def corrupt_fact(fact_id: str) -> StoreError:
    """The error for a fact value whose checksum (or content hash) does not match."""
    return StoreError(
        f"the stored value of fact {fact_id!r} is corrupt: its checksum does not match its "
        "data (the storage was damaged or the row was changed outside runeflow). Restore the "
        "database from a backup; the instances that use this fact cannot be loaded until "
        "then (or delete them with Store.delete)"
    )


def corrupt_snapshot(workflow_id: str, cursor: int) -> StoreError:
    """The error for a snapshot whose checksum does not match."""
    return StoreError(
        f"cannot read the snapshot of workflow {workflow_id!r} at cursor {cursor}: it is "
        "corrupt (its checksum does not match its data). The log is not affected: recover "
        "with use_snapshot=False to rebuild from the whole log, or save a new snapshot",
        workflow_id=workflow_id,
        cursor=cursor,
    )


def verified_snapshot(workflow_id: str, row: Any) -> tuple[int, bytes]:
    """Check a stored ``(cursor, data, checksum)`` snapshot row; return ``(cursor, data)``.

    Raises:
        StoreError: the checksum does not match, or the cursor is not a number.
    """
    cursor, data, crc = row[0], as_bytes(row[1]), row[2]
    if type(cursor) is not int:
        raise StoreError(
            f"cannot read the snapshot of workflow {workflow_id!r}: its cursor is {cursor!r}, "
            "not a number. Recover with use_snapshot=False, or save a new snapshot",
            workflow_id=workflow_id,
        )
    if crc is not None and checksum(data) != crc:
        raise corrupt_snapshot(workflow_id, cursor)
    return cursor, data


def verified_values(rows: list[Any]) -> tuple[dict[str, bytes], dict[str, StoreError]]:
    """Check fetched ``(fact_id, value, check)`` rows, where ``check`` is the CRC-32 of a
    value kept in its fact's row, the SHA-256 (hex) of a value kept in the content table
    under that hash, or ``None`` for a value kept in its fact's row before schema version 4
    (accepted as it is).

    Returns:
        The values that passed, and an error for each fact whose value did not.
    """
    if not rows:
        return {}, {}
    ids, values, checks = zip(*rows, strict=True)
    try:  # the common cases, checked in C: all values inline, or all in the content table
        if type(checks[0]) is int:
            if tuple(map(checksum, values)) == checks:
                return dict(zip(ids, values, strict=True)), {}
        elif type(checks[0]) is str and set(map(type, checks)) == {str}:
            distinct = dict(zip(checks, values, strict=True))  # one content row per hash
            if all(hashlib.sha256(v).hexdigest() == h for h, v in distinct.items()):
                return dict(zip(ids, values, strict=True)), {}
    except TypeError:  # a value that is not bytes
        pass
    found: dict[str, bytes] = {}
    bad: dict[str, StoreError] = {}
    good: set[str] = set()
    for fact_id, value, check in rows:
        data = as_bytes(value)
        if type(check) is int:
            ok = checksum(data) == check
        elif type(check) is str:
            ok = check in good or hashlib.sha256(data).hexdigest() == check
            if ok:
                good.add(check)
        else:
            ok = check is None
        if ok:
            found[fact_id] = data
        else:
            bad[fact_id] = corrupt_fact(fact_id)
    return found, bad
