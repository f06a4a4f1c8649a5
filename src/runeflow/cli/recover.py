"""``runeflow recover``: load instances from the store into a runner here and drive them."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Any

from runeflow.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    error,
    note,
    one_line,
    open_store,
    untrusted_hint,
)
from runeflow.cli.common import store_label as label_of
from runeflow.cli.loading import load_workflows
from runeflow.cli.output import dumps
from runeflow.cli.report import outcome_dict, print_outcome
from runeflow.errors import RuneflowError, UntrustedDefinitionError, WorkflowNotFoundError
from runeflow.runner import InstanceInfo, Runner, Status
from runeflow.runner.ownership import OwnedElsewhereError
from runeflow.stores.base import Store

__all__ = ["cmd_recover"]

log = logging.getLogger("runeflow.cli")

_UNFINISHED = [Status.RUNNING.value, Status.WAITING.value]


def cmd_recover(args: argparse.Namespace) -> int:
    """``runeflow recover``: recover the named (or every unfinished) instance and drive each
    until it settles; print each one's outcome."""
    if bool(args.ids) == bool(args.all):
        raise CliError(
            "name the instances to recover (runeflow recover ID [ID ...]) or give --all for "
            "every running or waiting one, not both or neither"
        )
    definitions = [wf for spec in args.workflows for wf in load_workflows(spec)]
    label = label_of(args)
    store: Store | None = open_store(args, create=False)
    if store is None:
        if args.all:
            note(f"nothing to recover: there is no store at {label} yet")
            return _finish(args, [], {})
        unknown = f"there is no store at {label} yet"
        return _finish(args, [], {wid: f"unknown instance {wid!r}: {unknown}" for wid in args.ids})
    runner = Runner(
        store=store,
        workflows=definitions,
        executor=args.executor,
        recover=False,
        trusted_modules=args.trust,
    )
    interrupted = False
    loaded: list[str] = []
    try:
        refused: dict[str, str] = {}
        skipped: dict[str, str] = {}
        for wid in _targets(args, store):
            log.info("recovering instance %r", wid)
            try:
                runner.recover(wid)
            except OwnedElsewhereError as exc:
                owner = exc.owner or "another runner"
                message = (
                    f"instance {wid!r} is held by a live worker ({owner}), which runs it: "
                    "it can be recovered here once that worker stops (or its lease expires)"
                )
                (skipped if args.all else refused)[wid] = message
            except WorkflowNotFoundError:
                refused[wid] = f"unknown instance {wid!r} in {label} (`runeflow list` shows them)"
            except UntrustedDefinitionError as exc:
                refused[wid] = f"instance {wid!r} cannot be recovered: {untrusted_hint(exc)}"
            except RuneflowError as exc:
                refused[wid] = f"instance {wid!r} cannot be recovered: {one_line(str(exc))}"
            else:
                loaded.append(wid)
        for message in skipped.values():
            note(f"skipped: {message}")
        if args.all and not loaded and not refused:
            note(f"nothing to recover: no instance is running or waiting in {label}")
        outcomes = [(runner.wait(wid), runner.get_results(wid, components=None)) for wid in loaded]
        return _finish(args, outcomes, refused)
    except KeyboardInterrupt:
        interrupted = True
        for wid in loaded:  # keep the store as the last cycle left it
            with contextlib.suppress(RuneflowError):
                runner.stop(wid, persist=False)
        raise
    finally:
        runner.shutdown(wait=not interrupted)
        store.close()


def _targets(args: argparse.Namespace, store: Store) -> list[str]:
    if args.ids:
        return list(dict.fromkeys(args.ids))
    return [m.workflow_id for m in store.list(_UNFINISHED)]


def _finish(
    args: argparse.Namespace,
    outcomes: list[tuple[InstanceInfo, Any]],
    refused: dict[str, str],
) -> int:
    """Print every outcome and refusal; return 0 only when every instance was recovered and
    settled idle or waiting."""
    if args.format == "json":
        items = [
            outcome_dict(info, results) | {"error": info.error, "recovered": True}
            for info, results in outcomes
        ]
        items += [
            {"id": wid, "status": None, "results": None, "failures": [], "error": message}
            | {"recovered": False}
            for wid, message in refused.items()
        ]
        print(dumps(items), flush=True)
    else:
        for info, _ in outcomes:
            print_outcome(info, sys.stdout)
    for message in refused.values():
        error(message)
    settled_well = all(
        info.status in (Status.IDLE, Status.WAITING) and not info.failures for info, _ in outcomes
    )
    return EXIT_OK if settled_well and not refused else EXIT_FAILED
