"""Instance and timer rows read without trusting them (shared by the SQL stores).

A database can hold anything in a row: SQLite is typeless, and anyone can ``UPDATE`` a
table. Every field is checked as it is read; what cannot be read is reported by name,
never as a raw ``JSONDecodeError`` or ``TypeError``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from runeflow.errors import StoreError
from runeflow.stores.base import InstanceMeta, Timer
from runeflow.stores.integrity import RESTORE_ADVICE, STATUSES

__all__ = ["INSTANCE_COLUMNS", "instance_meta", "metas_in_order", "read_instance", "read_timer"]

INSTANCE_COLUMNS = (
    "workflow_id",
    "definition_name",
    "definition_hash",
    "status",
    "created_at",
    "updated_at",
    "cursor",
    "metadata",
    "owner",
    "lease_expires",
    "epoch",
    "error",
    "compacted",
)
"""The order of the fields of an instance row as the stores select it."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _text(value: Any, name: str, problems: list[str]) -> str:
    if type(value) is str:
        return value
    problems.append(f"unreadable {name}: {_show(value)}")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def _number(value: Any, name: str, problems: list[str]) -> float:
    if type(value) in (float, int) and math.isfinite(value):
        return float(value)
    problems.append(f"unreadable {name}: {_show(value)}")
    return 0.0


def _integer(value: Any, name: str, problems: list[str]) -> int:
    if type(value) is int:
        return value
    problems.append(f"unreadable {name}: {_show(value)}")
    return 0


def _json_object(value: Any, name: str, problems: list[str]) -> dict[str, Any]:
    if type(value) is dict:
        return value
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            problems.append(f"unreadable {name}: {exc}")
            return {}
        if type(value) is dict:
            return value
    problems.append(f"unreadable {name}: {_show(value)} is not a JSON object")
    return {}


def read_instance(row: Sequence[Any], now: float) -> tuple[InstanceMeta, list[str]]:
    """Read an instance row (fields in :data:`INSTANCE_COLUMNS` order).

    Returns:
        The metadata, with what could not be read replaced (``""``, ``0``, ``{}``) and its
        ``error`` saying what is wrong, before the error a runner recorded; and the list
        of problems (empty for a sound row).
    """
    problems: list[str] = []
    workflow_id = _text(row[0], "workflow_id", problems)
    name = _text(row[1], "definition_name", problems)
    definition_hash = _text(row[2], "definition_hash", problems)
    status = _text(row[3], "status", problems)
    if type(row[3]) is str and status not in STATUSES:
        problems.append(f"unknown status {_show(status)}")
    created_at = _number(row[4], "created_at", problems)
    updated_at = _number(row[5], "updated_at", problems)
    cursor = _integer(row[6], "cursor", problems)
    metadata = _json_object(row[7], "metadata", problems)
    owner: str | None = None
    if row[8] is not None:
        owner = _text(row[8], "owner", problems)
    lease_expires = _number(row[9], "lease_expires", problems)
    epoch = _integer(row[10], "epoch", problems)
    stored = row[11]
    if stored is not None and type(stored) is not str:
        _text(stored, "error", problems)
        stored = None
    compacted = _integer(row[12], "compacted", problems) if len(row) > 12 else 0
    error = "; ".join([*problems, stored] if stored else problems) or None
    meta = InstanceMeta(
        workflow_id=workflow_id,
        definition_name=name,
        definition_hash=definition_hash,
        status=status,
        created_at=created_at,
        updated_at=updated_at,
        cursor=cursor,
        metadata=metadata,
        owner=owner if lease_expires > now else None,
        epoch=epoch,
        error=error,
        compacted=compacted,
    )
    return meta, problems


def instance_meta(row: Sequence[Any], now: float) -> InstanceMeta:
    """Read the row of one instance asked for by id (``Store.get``).

    Raises:
        StoreError: the row cannot be read whole, naming the instance and what is wrong.
    """
    meta, problems = read_instance(row, now)
    if problems:
        raise StoreError(
            f"cannot read instance {meta.workflow_id!r}: its stored row is damaged "
            f"({'; '.join(problems)}). The store was damaged or the row was changed outside "
            f"runeflow: {RESTORE_ADVICE}. `runeflow list` shows it flagged",
            workflow_id=meta.workflow_id,
        )
    return meta


def metas_in_order(rows: Iterable[Sequence[Any]], ids: Sequence[Any]) -> list[InstanceMeta]:
    """Instance rows (fields in :data:`INSTANCE_COLUMNS` order) in the order of ``ids``; an
    id without a row (deleted meanwhile) is left out, a damaged row comes flagged."""
    found = {row[0]: row for row in rows}
    now = time.time()
    return [read_instance(found[i], now)[0] for i in ids if i in found]


def read_timer(row: Sequence[Any]) -> Timer:
    """Read a ``(timer_id, workflow_id, fire_at, payload)`` timer row.

    Raises:
        StoreError: the row cannot be read, naming the timer and its instance.
    """
    timer_id, workflow_id, fire_at, payload = row
    problems: list[str] = []
    _text(timer_id, "timer id", problems)
    _text(workflow_id, "workflow id", problems)
    when = _number(fire_at, "fire_at", problems)
    data = _json_object(payload, "payload", problems)
    if problems:
        raise StoreError(
            f"cannot read timer {timer_id!r} of workflow {workflow_id!r}: its stored row is "
            f"damaged ({'; '.join(problems)}). Cancel it (Store.cancel_timer({timer_id!r})), "
            "or restore the database from a backup",
            workflow_id=workflow_id if type(workflow_id) is str else None,
        )
    return Timer(timer_id=timer_id, workflow_id=workflow_id, fire_at=when, payload=data)
