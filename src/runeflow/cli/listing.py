"""``runeflow list``: the stored instances, with their failures, read from the store only."""

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
from runeflow.view import load_view

__all__ = ["Listed", "cmd_list", "list_instances"]

HEADERS = ["id", "workflow", "status", "failures", "events", "created", "updated", "owner", "error"]
"""The columns of ``runeflow list``."""


@dataclass(frozen=True, slots=True)
class Listed:
    """One instance as ``runeflow list`` shows it."""

    meta: InstanceMeta
    """What the store keeps besides the log."""
    failures: list[RunnableFailed] | None
    """Its final failures, in order; ``None`` when its log could not be read."""
    error: str | None
    """Why it could not be loaded (the store's ``error``), or why its log cannot be read."""


def list_instances(store: Store, status: list[str] | None) -> list[Listed]:
    """The stored instances (with ``status`` when given), oldest first, each with its final
    failures read from its log (fact values are not loaded). An ``idle`` instance has none
    by definition, so its log is not read. An instance whose log cannot be read is listed
    with its error."""
    out = []
    for meta in sorted(store.list(status), key=lambda m: m.created_at):
        failures: list[RunnableFailed] | None = []
        error = meta.error
        if meta.status == "idle":
            out.append(Listed(meta, failures, error))
            continue
        try:
            failures = load_view(store, meta.workflow_id, values=False).failures
        except RuneflowError as exc:
            failures = None
            error = error or f"cannot read its log: {exc}"
        out.append(Listed(meta, failures, error))
    return out


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
            _failures_cell(i.failures),
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


def _failures_cell(failures: list[RunnableFailed] | None) -> str:
    """``0``, ``1 (charge_card)``, ``3 (charge_card)``: the count and the first failing
    component; ``?`` when the log cannot be read."""
    if failures is None:
        return "?"
    if not failures:
        return "0"
    return f"{len(failures)} ({failures[0].component})"


def _item(listed: Listed) -> dict[str, Any]:
    """One ``runeflow list --format json`` item."""
    failures = listed.failures
    first = event_failure(failures[0], traceback=False) if failures else None
    return meta_dict(listed.meta) | {
        "error": listed.error,
        "failures": None if failures is None else len(failures),
        "first_failure": first,
    }
