"""The commands that run instances here: ``run``, ``send``, ``resume`` and ``worker``."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from runeflow.cli.common import (
    EXIT_OK,
    CliError,
    note,
    open_store,
    parse_json,
    run_context,
    store_label,
    untrusted_hint,
)
from runeflow.cli.loading import load_target, load_workflows
from runeflow.cli.output import ProgressDisplay, dumps, print_table, short
from runeflow.cli.report import outcome_dict, print_outcome, run_exit_code
from runeflow.errors import RuneflowError, UntrustedDefinitionError
from runeflow.runner import Client, Hooks, InstanceInfo, Runner
from runeflow.runner.stored import stored_info
from runeflow.stores.base import Store
from runeflow.view import load_view

__all__ = ["EXECUTORS", "cmd_resume", "cmd_run", "cmd_send", "cmd_worker", "print_results"]

EXECUTORS = ("threads", "processes", "asyncio", "inline", "dask", "ray")
"""The ``--executor`` choices (``dask``/``ray`` reach $DASK_SCHEDULER_ADDRESS/$RAY_ADDRESS, else
start a local cluster)."""


def cmd_run(args: argparse.Namespace) -> int:
    """``runeflow run``: start an instance, feed its input, follow it, print its results."""
    wf, definition = load_target(args.target)
    value = parse_json(args.input, "--input")
    context = run_context(args.context)
    store = open_store(args)
    workflow_id = args.id or f"{wf.name}-{uuid.uuid4().hex[:8]}"
    if store.exists(workflow_id):
        store.close()
        raise CliError(
            f"an instance {workflow_id!r} already exists in {store_label(args)}: pick another "
            f"--id, or feed it with `runeflow send {workflow_id} INPUT`"
        )
    if args.submit:
        with store:
            Client(store).start_instance(wf, value, id=workflow_id, definition=definition)
            if args.format == "json":
                _print_stored(store, workflow_id)
            else:
                print(workflow_id, flush=True)
        note(f"submitted {workflow_id!r}: a `runeflow worker` serving the store runs it")
        return EXIT_OK
    display = ProgressDisplay(sys.stderr)

    def start(runner: Runner) -> None:
        runner.start_instance(
            wf, value, id=workflow_id, run_context=context, import_path=definition
        )

    return _drive(args, store, display, workflow_id, start)


def cmd_send(args: argparse.Namespace) -> int:
    """``runeflow send``: feed more input to an instance and follow it."""
    value = parse_json(args.input, "INPUT")
    context = run_context(args.context)
    store = open_store(args, existing=args.id)
    display = ProgressDisplay(sys.stderr)
    return _drive(
        args, store, display, args.id, lambda r: r.run(args.id, value, run_context=context)
    )


def cmd_resume(args: argparse.Namespace) -> int:
    """``runeflow resume``: deliver an event to an instance's open wait and follow it."""
    payload = parse_json(args.payload, "--payload") if args.payload is not None else None
    store = open_store(args, existing=args.id)
    display = ProgressDisplay(sys.stderr)

    def resume(runner: Runner) -> None:
        runner.resume(args.id, args.event, payload=payload, step=args.step)

    return _drive(args, store, display, args.id, resume)


def _drive(
    args: argparse.Namespace,
    store: Store,
    display: ProgressDisplay,
    workflow_id: str,
    action: Callable[[Runner], None],
) -> int:
    """Open a runner, do ``action``, follow the instance, print its results."""
    interrupted = False
    runner = _open_runner(store, args.executor, display.hooks, getattr(args, "trust", ()))
    try:
        if getattr(args, "definition", None):
            runner.register(load_target(args.definition)[0])
        try:
            action(runner)
        except UntrustedDefinitionError as exc:
            raise CliError(untrusted_hint(exc)) from exc
        if runner.lookup(workflow_id) is None:  # held by another process, which applies it
            display.close()
            note(
                f"recorded in the store: instance {workflow_id!r} is held by another runner "
                "(a `runeflow worker`), which applies it"
            )
            if args.format == "json":
                _print_stored(store, workflow_id)
            return EXIT_OK
        info = _follow(runner, workflow_id, display)
        display.close()
        results = runner.get_results(workflow_id, components=None)
        if args.format == "json":
            print(dumps(outcome_dict(info, results)), flush=True)
        else:
            print_results(results, args.format)
        print_outcome(info, sys.stderr, elapsed=display.elapsed, tracebacks=args.format != "json")
        return run_exit_code(info)
    except KeyboardInterrupt:
        interrupted = True
        # Unload without a final checkpoint: the store keeps the last cycle's, with the
        # instance `running`, and results of the steps still executing are ignored here.
        with contextlib.suppress(RuneflowError):
            runner.stop(workflow_id, persist=False)
        raise
    finally:
        display.close()
        runner.shutdown(wait=not interrupted)
        store.close()


def _print_stored(store: Store, workflow_id: str) -> None:
    """The ``--format json`` object of an instance as the store has it (run elsewhere)."""
    info = stored_info(store, workflow_id)
    print(dumps(outcome_dict(info, load_view(store, workflow_id).results())), flush=True)


def _open_runner(
    store: Store, executor: str, hooks: Hooks | None, trusted: Sequence[str] = ()
) -> Runner:
    # recover=False: a one-shot command runs only the instance it names.
    return Runner(
        store=store, executor=executor, hooks=hooks, recover=False, trusted_modules=trusted
    )


def _follow(runner: Runner, workflow_id: str, display: ProgressDisplay) -> InstanceInfo:
    """Wait until the instance settles, redrawing the progress display meanwhile."""
    while True:
        try:
            return runner.wait(workflow_id, timeout=0.1)
        except TimeoutError:
            display.update(runner, workflow_id)


def print_results(results: dict[str, Any], fmt: str) -> None:
    """The results on stdout: JSON (``text``, the default), or a table (``table``)."""
    if fmt == "table":
        rows = [[port, short(value, 100)] for port, value in results.items()]
        print_table(None, ["output", "value"], rows, sys.stdout)
        return
    print(dumps(results), flush=True)


def cmd_worker(args: argparse.Namespace) -> int:
    """``runeflow worker``: serve the store until SIGINT/SIGTERM, then shut down cleanly."""
    definitions = [wf for spec in args.workflows for wf in load_workflows(spec)]
    store = open_store(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    runner = Runner(
        store=store,
        workflows=definitions,
        executor=args.executor,
        trusted_modules=args.trust,
        poll_interval=args.poll_interval,
        lease_ttl=args.lease_ttl,
        max_instances=args.max_instances,
    )
    try:
        note(
            f"runeflow worker {runner.owner}: serving {store_label(args)} (claims instances "
            "with work and no live owner); stop with Ctrl-C or SIGTERM"
        )
        runner.serve(stop)
    finally:
        runner.shutdown()
        store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    note("runeflow worker: stopped; unfinished instances are saved and resumable")
    return EXIT_OK
