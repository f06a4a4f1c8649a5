"""Reading instances from the store, running nothing: ``show``, ``graph`` and ``wait``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Collection

from runeflow.cli import graph as graphs
from runeflow.cli import show as shows
from runeflow.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    CliError,
    error,
    open_store,
)
from runeflow.cli.loading import load_target
from runeflow.cli.output import dumps
from runeflow.cli.report import outcome_dict, print_outcome
from runeflow.runner import InstanceInfo, Status
from runeflow.runner.ownership import owner_is_dead
from runeflow.runner.stored import has_pending_commands, stored_info, wait_stored
from runeflow.stores.base import Store
from runeflow.view import load_view

__all__ = ["SETTLED", "cmd_graph", "cmd_show", "cmd_wait", "wait_for"]

SETTLED = (Status.IDLE, Status.WAITING, Status.FAILED, Status.STOPPED)
"""The statuses ``runeflow wait`` waits for by default."""


def cmd_show(args: argparse.Namespace) -> int:
    """``runeflow show``: describe a stored instance from its log."""
    store = open_store(args, existing=args.id)
    with store:
        view = load_view(store, args.id)
    if args.format == "json":
        print(dumps(shows.view_dict(view, args.events)))
    else:
        shows.print_view(view, args.events)
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    """``runeflow graph``: a definition, or a stored instance's state, as Mermaid or DOT."""
    if (args.target is None) == (args.id is None):
        raise CliError("give a definition (PATH_OR_MODULE:ATTR) or --id ID, not both or neither")
    if args.id is not None:
        store = open_store(args, existing=args.id)
        with store:
            view = load_view(store, args.id)
        name, nodes = view.meta.definition_name, view.nodes()
    else:
        wf, _ = load_target(args.target)
        name, nodes = wf.name, graphs.nodes_of(wf)
    render = {"dot": graphs.to_dot, "svg": graphs.to_svg}.get(args.format, graphs.to_mermaid)
    sys.stdout.write(render(name, nodes))
    return EXIT_OK


def cmd_wait(args: argparse.Namespace) -> int:
    """``runeflow wait``: block until the instance settles (or reaches one of ``--status``),
    reading the store; print how it ended.

    Exit codes: 0 idle or waiting (or ``running``, when asked for), 1 failed or stopped,
    4 timed out, 2 unknown instance or bad arguments.
    """
    store = open_store(args, existing=args.id)
    with store:
        wanted = {Status(s) for s in args.status} if args.status else None
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        timed_out, holder = False, None
        try:
            info = wait_for(store, args.id, wanted, deadline, args.timeout)
        except TimeoutError:
            timed_out = True
            info = stored_info(store, args.id)
            holder = store.get(args.id).owner
        results = load_view(store, args.id).results()
    if args.format == "json":
        print(dumps(outcome_dict(info, results) | {"error": info.error, "timed_out": timed_out}))
    elif not timed_out:
        print_outcome(info, sys.stdout)
    if timed_out:
        error(_timeout_message(args, info, holder))
        return EXIT_TIMEOUT
    return EXIT_FAILED if info.status.is_terminal else EXIT_OK


def wait_for(
    store: Store,
    workflow_id: str,
    wanted: Collection[Status] | None,
    deadline: float | None,
    timeout: float | None,
) -> InstanceInfo:
    """Poll the store until the instance settles (``wanted=None``: not ``running``, its
    commands applied), or its status is one of ``wanted`` (commands applied), or it is
    ``failed`` or ``stopped`` (it cannot change any more).

    Raises:
        TimeoutError: ``deadline`` (a ``time.monotonic()`` value) passed first.
    """
    if wanted is None:
        return wait_stored(store, workflow_id, deadline, timeout)
    delay = 0.005

    def reached(status: Status, pending: bool) -> bool:
        return status.is_terminal or (
            status in wanted and (status is Status.RUNNING or not pending)
        )

    while True:
        # Commands before the status, as in wait_stored: a command applied between the two
        # reads shows in the status read second
        pending = has_pending_commands(store, workflow_id)
        status = _status(store.get(workflow_id).status)
        if reached(status, pending):
            info = stored_info(store, workflow_id)
            if reached(info.status, pending):  # else it moved on meanwhile: look again
                return info
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(f"instance {workflow_id!r} is still {status.value}")
        time.sleep(delay if remaining is None else min(delay, remaining))
        delay = min(delay * 2, 0.1)


def _status(text: str) -> Status:
    try:
        return Status(text)
    except ValueError:  # written by a newer runeflow: nothing this one knows will change it
        return Status.FAILED


def _timeout_message(args: argparse.Namespace, info: InstanceInfo, holder: str | None) -> str:
    wid, state = args.id, info.status.value
    if holder is not None and not owner_is_dead(holder):
        who = f"run by {holder}"
    else:
        who = (
            "no runner holds it: start `runeflow worker` on the store, or drive it here with "
            f"`runeflow recover {wid} --workflows MODULE:ATTR`"
        )
    if args.status and state not in args.status and info.status is not Status.RUNNING:
        what = f"is {state}, not {' or '.join(args.status)}"
    elif info.status is Status.RUNNING:
        what = f"is still running ({who})"
    else:
        what = f"is {state} with commands not applied yet ({who})"
    return f"timed out after {args.timeout:g}s: instance {wid!r} {what}"
