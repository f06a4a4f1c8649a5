"""``runeflow list``: the stored instances, with their failures, read from the store only.

It reads the store as the dashboard's instances page does: the instances a page at a time
through the indexed :meth:`~runeflow.stores.base.Store.list_page`, and each one's failures
from the same summary fold (:func:`runeflow.view.load_summary`: counters, nothing per fact).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from runeflow.cli.common import EXIT_OK, open_store
from runeflow.cli.output import dumps, format_time, print_table, short
from runeflow.cli.show import event_failure, meta_dict
from runeflow.errors import RuneflowError
from runeflow.model.events import RunnableFailed
from runeflow.stores.base import InstanceMeta, Store
from runeflow.stores.listing import MAX_PAGE, InstanceFilter
from runeflow.view import load_summary

__all__ = ["Listed", "cmd_list", "list_instances"]

HEADERS = ["id", "workflow", "status", "failures", "events", "created", "updated", "owner", "error"]
"""The columns of ``runeflow list``."""


@dataclass(frozen=True, slots=True)
class Listed:
    """One instance as ``runeflow list`` shows it."""

    meta: InstanceMeta
    """What the store keeps besides the log."""
    failures: int | None
    """How many final failures it had; ``None`` when its log could not be read."""
    first_failure: RunnableFailed | None
    """The first of them."""
    error: str | None
    """Why it could not be loaded (the store's ``error``), or why its log cannot be read."""


def list_instances(store: Store, status: list[str] | None) -> list[Listed]:
    """The stored instances (with ``status`` when given), oldest first, each with its final
    failures folded from its log (:func:`~runeflow.view.load_summary`; fact values are not
    loaded). An ``idle`` instance has none by definition, so its log is not read. An
    instance whose log cannot be read is listed with its error."""
    return [_listed(store, meta) for meta in reversed(_newest_first(store, status))]


def _newest_first(store: Store, status: list[str] | None) -> list[InstanceMeta]:
    """Every instance with one of ``status`` (all when ``None``), newest first, read a
    page at a time through the store's listing index."""
    where = InstanceFilter(statuses=tuple(dict.fromkeys(status or ())))
    metas: list[InstanceMeta] = []
    page = store.list_page(where, limit=MAX_PAGE)
    metas += page.instances
    while page.next is not None:
        page = store.list_page(where, after=page.next, limit=MAX_PAGE)
        metas += page.instances
    return metas


def _listed(store: Store, meta: InstanceMeta) -> Listed:
    if meta.status == "idle":
        return Listed(meta, 0, None, meta.error)
    try:
        summary = load_summary(store, meta)
    except RuneflowError as exc:
        return Listed(meta, None, None, meta.error or f"cannot read its log: {exc}")
    return Listed(meta, summary.failures, summary.first_failure, meta.error)


def cmd_list(args: argparse.Namespace) -> int:
    """``runeflow list``: the stored instances, oldest first."""
    store = open_store(args, create=False)
    if store is None:
        listed = []
    else:
        with store:
            listed = list_instances(store, args.status)
    if args.format == "json":
        print(dumps([_item(i) for i in listed]))
        return EXIT_OK
    rows = [
        [
            i.meta.workflow_id,
            i.meta.definition_name,
            i.meta.status,
            _failures_cell(i),
            str(i.meta.cursor),
            format_time(i.meta.created_at),
            format_time(i.meta.updated_at),
            i.meta.owner or "",
            short(" ".join(i.error.split()), 60) if i.error else "",
        ]
        for i in listed
    ]
    print_table(None, HEADERS, rows, sys.stdout)
    return EXIT_OK


def _failures_cell(listed: Listed) -> str:
    """``0``, ``1 (charge_card)``, ``3 (charge_card)``: the count and the first failing
    component; ``?`` when the log cannot be read."""
    if listed.failures is None:
        return "?"
    if listed.first_failure is None:
        return str(listed.failures)
    return f"{listed.failures} ({listed.first_failure.component})"


def _item(listed: Listed) -> dict[str, Any]:
    """One ``runeflow list --format json`` item."""
    first = listed.first_failure
    return meta_dict(listed.meta) | {
        "error": listed.error,
        "failures": listed.failures,
        "first_failure": event_failure(first, traceback=False) if first is not None else None,
    }
