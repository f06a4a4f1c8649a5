"""Changing instances without running them: ``stop``, ``delete`` and ``prune``."""

from __future__ import annotations

import argparse
import sys
import time

from runeflow.cli.common import EXIT_FAILED, EXIT_OK, CliError, error, note, open_store
from runeflow.cli.common import store_label as label_of
from runeflow.cli.output import dumps, format_time, print_table
from runeflow.errors import WorkflowNotFoundError
from runeflow.runner import Status
from runeflow.runner.ownership import OwnedElsewhereError, Ownership, owner_is_dead
from runeflow.runner.retention import prune_store
from runeflow.runner.stored import stop_stored
from runeflow.stores.base import PRUNABLE, InstanceMeta, Store

__all__ = ["cmd_delete", "cmd_prune", "cmd_stop"]


def cmd_stop(args: argparse.Namespace) -> int:
    """``runeflow stop``: mark an instance stopped, without loading or running it.

    When a runner (a ``runeflow worker``) owns the instance, the stop is recorded in the
    store and that runner applies it.
    """
    store = open_store(args, existing=args.id)
    with store:
        status = store.get(args.id).status
        if status == Status.STOPPED.value:
            note(f"instance {args.id!r} is already stopped")
            return EXIT_OK
        owner = stop_stored(store, args.id, Ownership(store, 30.0))
        if owner is not None:
            note(
                f"instance {args.id!r} is run by {owner}: the stop is recorded in the store "
                "and applied there"
            )
            return EXIT_OK
    note(f"instance {args.id!r} stopped (it was {status})")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    """``runeflow delete``: remove instances (log, snapshots, timers, lease, metadata).

    Asks for confirmation on a terminal unless ``--yes``; refuses without ``--yes`` when stdin
    is not a terminal. An instance a live worker holds is refused unless ``--force``.

    Exit codes: 0 every instance deleted; 1 one was unknown, held by a live worker, or the
    confirmation was declined (the others named are still deleted once confirmed);
    2 no ``--yes`` and no terminal to ask on.
    """
    if not args.yes and not _isatty():
        raise CliError(
            "refusing to delete without confirmation: stdin is not a terminal; pass --yes "
            "to delete for good"
        )
    label = label_of(args)
    ids = list(dict.fromkeys(args.ids))
    store = open_store(args, create=False)
    if store is None:
        for wid in ids:
            error(f"unknown instance {wid!r}: there is no store at {label} yet")
        return EXIT_FAILED
    with store:
        metas, failed = _deletable(store, ids, label, args.force)
        if not metas:
            return EXIT_FAILED
        if not args.yes and not _confirm(metas, label):
            note("nothing deleted")
            return EXIT_FAILED
        ownership = Ownership(store, 30.0)
        for meta in metas:
            wid = meta.workflow_id
            try:
                if not args.force:  # hold its lease while deleting: no worker claims it now
                    ownership.acquire(wid)
                store.delete(wid)
            except OwnedElsewhereError as exc:
                error(_held_message(wid, exc.owner))
                failed = True
            except WorkflowNotFoundError:
                error(f"unknown instance {wid!r} in {label}: deleted meanwhile")
                failed = True
            else:
                note(f"deleted instance {wid!r} ({meta.definition_name}, {meta.status})")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    """``runeflow prune``: delete finished instances last updated before ``--older-than`` ago
    (see :func:`runeflow.runner.retention.prune_store`); ``--dry-run`` only lists them."""
    statuses = list(dict.fromkeys(args.status or PRUNABLE))
    before = time.time() - args.older_than
    store = open_store(args, create=False)
    metas: dict[str, InstanceMeta] = {}
    if store is None:
        ids: list[str] = []
    else:
        with store:
            if args.format == "table":  # read before they go
                metas = {m.workflow_id: m for m in store.list(statuses)}
            if args.dry_run:
                ids = store.prune(before, statuses, limit=args.limit, dry_run=True)
            else:
                ids = prune_store(store, before, statuses, limit=args.limit)
    if args.format == "json":
        out = {"pruned": ids, "dry_run": args.dry_run, "updated_before": before}
        print(dumps(out | {"statuses": statuses}))
        return EXIT_OK
    if args.format == "table":
        rows = [_prune_row(wid, metas.get(wid)) for wid in ids]
        print_table(None, ["id", "workflow", "status", "updated"], rows, sys.stdout)
    else:
        for wid in ids:
            print(wid)
    what = "would be pruned (dry run: nothing deleted)" if args.dry_run else "pruned"
    note(
        f"{len(ids)} instance(s) {what}: {' or '.join(statuses)}, last updated before "
        f"{format_time(before)}"
    )
    return EXIT_OK


def _prune_row(workflow_id: str, meta: InstanceMeta | None) -> list[str]:
    if meta is None:
        return [workflow_id, "", "", ""]
    return [workflow_id, meta.definition_name, meta.status, format_time(meta.updated_at)]


def _deletable(
    store: Store, ids: list[str], label: str, force: bool
) -> tuple[list[InstanceMeta], bool]:
    """The instances that may be deleted, and whether any named one may not (said why)."""
    metas, failed = [], False
    for wid in ids:
        try:
            meta = store.get(wid)
        except WorkflowNotFoundError:
            error(f"unknown instance {wid!r} in {label} (`runeflow list` shows them)")
            failed = True
            continue
        if meta.owner is not None and not force and not owner_is_dead(meta.owner):
            error(_held_message(wid, meta.owner))
            failed = True
            continue
        metas.append(meta)
    return metas, failed


def _held_message(workflow_id: str, owner: str | None) -> str:
    return (
        f"instance {workflow_id!r} is held by a live worker ({owner or 'another runner'}): "
        f"stop it first (`runeflow stop {workflow_id}`, applied by that worker) or stop the "
        "worker, or pass --force to delete it under the worker"
    )


def _isatty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _confirm(metas: list[InstanceMeta], label: str) -> bool:
    """Ask on the terminal; only ``y`` or ``yes`` confirms."""
    names = ", ".join(f"{m.workflow_id} ({m.status})" for m in metas)
    print(
        f"delete {len(metas)} instance(s) from {label} for good: {names}? [y/N] ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")
