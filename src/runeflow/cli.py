"""The ``runeflow`` command: run, inspect, resume, stop and draw workflows, and serve them.

::

    runeflow run PATH.py:ATTR --input JSON [--id ID] [--executor threads|processes|asyncio]
    runeflow list [--status S]
    runeflow show ID [--events]
    runeflow resume ID EVENT [--payload JSON] [--step STEP]
    runeflow send ID INPUT
    runeflow stop ID
    runeflow graph PATH.py:ATTR [--format mermaid|dot]    runeflow graph --id ID
    runeflow worker [--workflows MODULE ...]

Every command takes ``--store URL`` (default: ``$RUNEFLOW_STORE``, else the embedded SQLite
file ``runeflow.db`` in the current directory) and ``--debug`` (tracebacks instead of
one-line errors). A definition is ``path/to/file.py:attribute`` or ``package.module:attribute``
naming a Workflow or a function that builds one; ``run`` records it (as an absolute path for
a file) so that ``resume``, ``send`` and ``runeflow worker`` can rebuild the instance in
another process.

Exit codes: 0 the instance is idle (done) or the command succeeded; 1 the instance failed
(status ``failed``, a component failed for good, or it was stopped); 2 usage or input error
(bad arguments or JSON, unknown file, attribute or instance, unreachable store); 3 the
instance is waiting for an event or a timer; 130 interrupted.

``rich`` (``pip install "runeflow[cli]"``) draws the progress bar and tables when the output
is a terminal; without it, or in a pipe, output is plain text and JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from runeflow import _cli_graph, _cli_show
from runeflow._cli_output import ProgressDisplay, dumps, format_time, print_table, short
from runeflow.errors import RuneflowError, WorkflowDefinitionError
from runeflow.model.replay import load_definition
from runeflow.model.workflow import Workflow
from runeflow.runner.client import Client
from runeflow.runner.ownership import Ownership
from runeflow.runner.runner import Runner
from runeflow.runner.stored import stop_stored
from runeflow.runner.worker import Hooks, InstanceInfo, Status
from runeflow.stores import store_from_url
from runeflow.stores.base import Store
from runeflow.view import load_view

__all__ = [
    "DEFAULT_STORE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_WAITING",
    "CliError",
    "build_parser",
    "main",
]

EXIT_OK = 0
"""The instance is idle (nothing left to do) or the command succeeded."""
EXIT_FAILED = 1
"""The instance failed, has a final failure, or was stopped; or an internal error."""
EXIT_USAGE = 2
"""Usage or input error: bad arguments or JSON, unknown file/attribute/id, unreachable store."""
EXIT_WAITING = 3
"""The instance waits for an external event or a timer."""
EXIT_INTERRUPTED = 130
"""Interrupted with Ctrl-C (the instance is checkpointed and resumable)."""

DEFAULT_STORE = "sqlite:///runeflow.db"
"""The store used without ``--store`` or ``RUNEFLOW_STORE``: SQLite in the current directory."""

EXECUTORS = ("threads", "processes", "asyncio", "inline")

log = logging.getLogger("runeflow.cli")


class CliError(Exception):
    """A problem with what the user asked for: one line on stderr, exit code 2."""


# --- entry point ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``runeflow`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit
    code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if os.getcwd() not in sys.path:  # like `python -m`: modules of the current directory
        sys.path.insert(0, os.getcwd())
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        _error("interrupted; the instance is checkpointed and `runeflow worker` can go on with it")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `runeflow show ID | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (CliError, RuneflowError, ValueError, OSError, ImportError, sqlite3.Error) as exc:
        if args.debug:
            traceback.print_exc()
        _error(_one_line(str(exc)) or type(exc).__name__)
        return EXIT_USAGE
    except Exception as exc:
        if args.debug:
            raise
        _error(f"internal error: {type(exc).__name__}: {_one_line(str(exc))} (--debug shows more)")
        return EXIT_FAILED


def _error(message: str) -> None:
    print(f"runeflow: error: {message}", file=sys.stderr, flush=True)


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- the parser -------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``runeflow`` command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        metavar="URL",
        help="memory://, sqlite:///path.db or postgresql://... "
        f"(default: $RUNEFLOW_STORE, else {DEFAULT_STORE})",
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common.add_argument("-v", "--verbose", action="store_true", help="log runner activity")
    parser = _Parser(
        prog="runeflow",
        description="Run, inspect, resume and draw runeflow workflows.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"runeflow {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_run, _add_list, _add_show, _add_resume, _add_send, _add_stop, _add_graph):
        add(sub, common)
    _add_worker(sub, common)
    return parser


_EPILOG = """\
exit codes:
  0  the instance is idle (done), or the command succeeded
  1  the instance failed (status failed, a final step failure, or stopped)
  2  usage or input error (bad JSON, unknown file, attribute or id, unreachable store)
  3  the instance is waiting for an event or a timer

`runeflow COMMAND --help` describes each command."""


def _version() -> str:
    from runeflow import __version__

    return __version__


def _add_run(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        help="start an instance of a workflow and run it",
        description="Start an instance, feed it INPUT and follow it until it is idle, waiting "
        "or failed; print its results (output ports, or the last value of each final step).",
    )
    p.add_argument("target", metavar="PATH_OR_MODULE:ATTR", help="the workflow or its builder")
    p.add_argument("--input", required=True, metavar="JSON", help="JSON, @file.json or - (stdin)")
    p.add_argument("--id", help="instance id (default: WORKFLOW-<random>)")
    p.add_argument(
        "--submit",
        action="store_true",
        help="only record the instance and its input in the store, run nothing here: a "
        "`runeflow worker` serving the store runs it (prints the id)",
    )
    _add_running_options(p)
    p.set_defaults(handler=cmd_run)


def _add_running_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=EXECUTORS, default="threads", help="default: threads")
    p.add_argument(
        "--context", metavar="JSON", help='run context, e.g. \'{"_global": {"key": "..."}}\''
    )
    p.add_argument("--format", choices=("json", "table"), default="json", help="results format")


def _add_list(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("list", parents=[common], help="list the stored instances")
    p.add_argument(
        "--status", action="append", choices=[s.value for s in Status], help="repeatable"
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_list)


def _add_show(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "show",
        parents=[common],
        help="an instance's status, timings, waits, timers, productions",
        description="Describe a stored instance from its event log (nothing is run).",
    )
    p.add_argument("id")
    p.add_argument("--events", action="store_true", help="also print the event log")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=cmd_show)


def _add_resume(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "resume",
        parents=[common],
        help="deliver an event to a waiting instance",
        description="Deliver EVENT to the instance's open wait, then follow it like `run`. "
        "When a `runeflow worker` holds the instance, the event is recorded and the worker "
        "applies it.",
    )
    p.add_argument("id")
    p.add_argument("event")
    p.add_argument("--payload", metavar="JSON", help="data sent with the event")
    p.add_argument("--step", help="the waiting step, when several wait for the same event")
    p.add_argument("--definition", metavar="PATH_OR_MODULE:ATTR", help=_DEFINITION_HELP)
    _add_running_options(p)
    p.set_defaults(handler=cmd_resume)


_DEFINITION_HELP = "the workflow's code, if not where `run` found it"


def _add_send(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "send",
        parents=[common],
        help="feed more input to an instance",
        description="Feed INPUT to an existing instance, then follow it like `run`.",
    )
    p.add_argument("id")
    p.add_argument("input", metavar="INPUT", help="JSON, @file.json or - (stdin)")
    p.add_argument("--definition", metavar="PATH_OR_MODULE:ATTR", help=_DEFINITION_HELP)
    _add_running_options(p)
    p.set_defaults(handler=cmd_send)


def _add_stop(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "stop",
        parents=[common],
        help="stop an instance (it takes no more input or events)",
        description="Mark an instance stopped without running anything. An instance held by "
        "a running worker must be stopped there (stop the worker first).",
    )
    p.add_argument("id")
    p.set_defaults(handler=cmd_stop)


def _add_graph(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "graph",
        parents=[common],
        help="draw a workflow (or an instance's state) as Mermaid or DOT",
        description="Print a workflow's graph; with --id, the instance's state on it: ran, "
        "running, waiting, failed, skipped (nodes colored, with counts).",
    )
    p.add_argument("target", nargs="?", metavar="PATH_OR_MODULE:ATTR")
    p.add_argument("--id", help="draw this stored instance instead")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    p.set_defaults(handler=cmd_graph)


def _add_worker(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "worker",
        parents=[common],
        help="serve the store: claim instances with work, fire timers, apply commands",
        description="A long-running runner: it claims instances that have work and no live "
        "owner (new submissions, a dead or paused worker's instances), fires due timers and "
        "applies input, events and stops sent by other processes, until SIGINT or SIGTERM; "
        "it then checkpoints everything and exits 0, leaving every instance resumable. "
        "Several workers may serve one store.",
    )
    p.add_argument(
        "--workflows",
        nargs="+",
        default=[],
        metavar="MODULE",
        help="definitions to register: package.module, file.py, or either with :ATTR "
        "(instances started by `runeflow run` need none)",
    )
    p.add_argument("--executor", choices=EXECUTORS, default="threads", help="default: threads")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="how often the store is polled for work, timers and commands (default: 0.5)",
    )
    p.add_argument(
        "--lease-ttl",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a dead or paused worker keeps its instances before another worker "
        "takes them over (default: 30; a dead process on this host is taken over at once)",
    )
    p.add_argument(
        "--max-instances",
        type=int,
        default=None,
        metavar="N",
        help="the most instances this worker claims (default: 4 x its thread pool)",
    )
    p.set_defaults(handler=cmd_worker)


# --- commands ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """``runeflow run``: start an instance, feed its input, follow it, print its results."""
    wf, definition = load_target(args.target)
    value = parse_json(args.input, "--input")
    context = _run_context(args.context)
    store = open_store(args)
    workflow_id = args.id or f"{wf.name}-{uuid.uuid4().hex[:8]}"
    if store.exists(workflow_id):
        store.close()
        raise CliError(
            f"an instance {workflow_id!r} already exists in {_store_label(args)}: pick another "
            f"--id, or feed it with `runeflow send {workflow_id} INPUT`"
        )
    if args.submit:
        with store:
            Client(store).start_instance(wf, value, id=workflow_id, definition=definition)
        print(workflow_id, flush=True)
        _note(f"submitted {workflow_id!r}: a `runeflow worker` serving the store runs it")
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
    context = _run_context(args.context)
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
    runner = _open_runner(store, args.executor, display.hooks)
    try:
        if getattr(args, "definition", None):
            runner.register(load_target(args.definition)[0])
        action(runner)
        if runner.lookup(workflow_id) is None:  # held by another process, which applies it
            display.close()
            _note(
                f"recorded in the store: instance {workflow_id!r} is held by another runner "
                "(a `runeflow worker`), which applies it"
            )
            return EXIT_OK
        info = _follow(runner, workflow_id, display)
        _print_results(runner.get_results(workflow_id, components=None), args.format)
        return _report(info, display.elapsed)
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


def _open_runner(store: Store, executor: str, hooks: Hooks | None) -> Runner:
    # recover=False: a one-shot command runs only the instance it names.
    return Runner(store=store, executor=executor, hooks=hooks, recover=False)


def _follow(runner: Runner, workflow_id: str, display: ProgressDisplay) -> InstanceInfo:
    """Wait until the instance settles, redrawing the progress display meanwhile."""
    while True:
        try:
            return runner.wait(workflow_id, timeout=0.1)
        except TimeoutError:
            display.update(runner, workflow_id)


def _print_results(results: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        print(dumps(results), flush=True)
        return
    rows = [[port, short(value, 100)] for port, value in results.items()]
    print_table(None, ["output", "value"], rows, sys.stdout)


def _report(info: InstanceInfo, elapsed: float) -> int:
    """Tell on stderr how the instance ended; return the exit code."""
    _note(
        f"instance {info.workflow_id} ({info.name}): {info.status.value}, "
        f"{info.step_count} step(s) in {elapsed:.2f}s"
    )
    for failure in info.failures:
        _note(f"  failed: {failure['component']}: {_one_line(failure['error'])}")
    if info.error:
        _note(f"  error: {_one_line(info.error)}")
    if info.status is Status.WAITING:
        _note_waits(info)
        return EXIT_WAITING
    if info.status.is_terminal or info.failures:
        return EXIT_FAILED
    return EXIT_OK


def _note_waits(info: InstanceInfo) -> None:
    for wait in info.open_waits:
        events = " | ".join(wait["events"])
        _note(f"  waiting: step {wait['step']!r} for {events}")
    for timer in info.pending_timers:
        _note(
            f"  timer: {timer['event']!r} for step {timer['step']!r} at "
            f"{format_time(timer['fire_at'])} (a `runeflow worker` fires it)"
        )
    if info.open_waits:
        _note(f"  resume with: runeflow resume {info.workflow_id} EVENT [--payload JSON]")


def cmd_list(args: argparse.Namespace) -> int:
    """``runeflow list``: the stored instances, oldest first."""
    store = open_store(args, create=False)
    if store is None:
        metas = []
    else:
        with store:
            metas = sorted(store.list(args.status), key=lambda m: m.created_at)
    if args.format == "json":
        print(dumps([_cli_show.meta_dict(m) for m in metas]))
        return EXIT_OK
    rows = [
        [
            m.workflow_id,
            m.definition_name,
            m.status,
            str(m.cursor),
            format_time(m.created_at),
            format_time(m.updated_at),
            m.owner or "",
            short(m.error, 60) if m.error else "",
        ]
        for m in metas
    ]
    headers = ["id", "workflow", "status", "events", "created", "updated", "owner", "error"]
    print_table(None, headers, rows, sys.stdout)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """``runeflow show``: describe a stored instance from its log."""
    store = open_store(args, existing=args.id)
    with store:
        view = load_view(store, args.id)
    if args.format == "json":
        print(dumps(_cli_show.view_dict(view, args.events)))
    else:
        _cli_show.print_view(view, args.events)
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    """``runeflow stop``: mark an instance stopped, without loading or running it.

    When a runner (a ``runeflow worker``) owns the instance, the stop is recorded in the
    store and that runner applies it.
    """
    store = open_store(args, existing=args.id)
    with store:
        status = store.get(args.id).status
        if status == Status.STOPPED.value:
            _note(f"instance {args.id!r} is already stopped")
            return EXIT_OK
        owner = stop_stored(store, args.id, Ownership(store, 30.0))
        if owner is not None:
            _note(
                f"instance {args.id!r} is run by {owner}: the stop is recorded in the store "
                "and applied there"
            )
            return EXIT_OK
    _note(f"instance {args.id!r} stopped (it was {status})")
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
        name, nodes = wf.name, _cli_graph.nodes_of(wf)
    render = _cli_graph.to_dot if args.format == "dot" else _cli_graph.to_mermaid
    sys.stdout.write(render(name, nodes))
    return EXIT_OK


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
        poll_interval=args.poll_interval,
        lease_ttl=args.lease_ttl,
        max_instances=args.max_instances,
    )
    try:
        _note(
            f"runeflow worker {runner.owner}: serving {_store_label(args)} (claims instances "
            "with work and no live owner); stop with Ctrl-C or SIGTERM"
        )
        runner.serve(stop)
    finally:
        runner.shutdown()
        store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _note("runeflow worker: stopped; unfinished instances are saved and resumable")
    return EXIT_OK


# --- loading definitions ------------------------------------------------------------------------


def load_target(target: str) -> tuple[Workflow, str]:
    """Load ``path/to/file.py:attr`` or ``package.module:attr``.

    Returns:
        The workflow, and the import path to record (a file's path made absolute) so that
        other processes can rebuild instances of it.

    Raises:
        CliError: the target is malformed, or the file, module or attribute cannot be loaded.
    """
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part or not attr:
        raise CliError(
            f"{target!r} names no workflow: write path/to/file.py:ATTR or package.module:ATTR"
        )
    if module_part.endswith(".py") or "/" in module_part or os.sep in module_part:
        file = Path(module_part).resolve()
        if not file.is_file():
            raise CliError(f"cannot load {target!r}: no file {module_part!r}")
        if str(file.parent) not in sys.path:  # so the file can import its neighbours
            sys.path.insert(0, str(file.parent))
        path = f"{file}:{attr}"
    else:
        path = target
    return _load(lambda: load_definition(path), target), path


def load_workflows(spec: str) -> list[Workflow]:
    """The workflows a ``--workflows`` item names: ``MODULE:ATTR``, or every Workflow that the
    module (``package.module`` or ``file.py``) defines at its top level."""
    if ":" in spec:
        return [load_target(spec)[0]]
    if spec.endswith(".py") or "/" in spec:
        file = Path(spec).resolve()
        if not file.is_file():
            raise CliError(f"cannot load {spec!r}: no such file")
        module = _load(lambda: _exec_file(file), spec)
    else:
        module = _load(lambda: importlib.import_module(spec), spec)
    found = {v.name: v for v in vars(module).values() if isinstance(v, Workflow)}
    if not found:
        raise CliError(f"{spec!r} defines no Workflow at top level: name one as {spec}:ATTR")
    return list(found.values())


def _exec_file(file: Path) -> Any:
    """Import a file under the name ``load_object`` gives it, so component hashes agree."""
    if str(file.parent) not in sys.path:
        sys.path.insert(0, str(file.parent))
    name = "_runeflow_user_" + file.stem
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot load {str(file)!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _load(load: Callable[[], Any], what: str) -> Any:
    try:
        return load()
    except WorkflowDefinitionError as exc:
        raise CliError(str(exc)) from exc
    except (CliError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # the user's module failed to import (SyntaxError, SystemExit...)
        raise CliError(f"cannot load {what!r}: {type(exc).__name__}: {exc}") from exc


# --- stores and arguments -----------------------------------------------------------------------


def store_url(args: argparse.Namespace) -> str:
    """``--store``, else ``$RUNEFLOW_STORE``, else :data:`DEFAULT_STORE`."""
    return str(args.store or os.environ.get("RUNEFLOW_STORE") or DEFAULT_STORE)


def _store_label(args: argparse.Namespace) -> str:
    """The store URL without its password, for messages."""
    parts = urlsplit(store_url(args))
    if parts.password is None:
        return store_url(args)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def open_store(
    args: argparse.Namespace, *, create: bool = True, existing: str | None = None
) -> Any:
    """Open the store the arguments name.

    Args:
        args: parsed arguments (``--store``).
        create: create a missing SQLite file; when ``False`` and the file is missing, return
            ``None`` instead (read-only commands do not litter the directory).
        existing: an instance id that must be in the store.

    Raises:
        CliError: the URL is malformed, the store is unreachable, or ``existing`` is unknown.
    """
    url, label = store_url(args), _store_label(args)
    sqlite_path = _sqlite_path(url)
    if sqlite_path and not Path(sqlite_path).parent.is_dir():
        raise CliError(
            f"cannot open the store {label}: no directory {str(Path(sqlite_path).parent)!r}"
        )
    if (not create or existing is not None) and sqlite_path and not Path(sqlite_path).exists():
        if existing is not None:
            raise CliError(f"unknown instance {existing!r}: there is no store at {label} yet")
        return None
    _check_postgres(url, label)
    try:
        store = store_from_url(url)
        store.setup()
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    except (RuneflowError, OSError, sqlite3.Error) as exc:
        raise CliError(f"cannot open the store {label}: {_one_line(str(exc))}") from exc
    if existing is not None and not store.exists(existing):
        store.close()
        raise CliError(f"unknown instance {existing!r} in {label} (`runeflow list` shows them)")
    return store


def _sqlite_path(url: str) -> str | None:
    return url[len("sqlite:///") :] if url.lower().startswith("sqlite:///") else None


def _check_postgres(url: str, label: str) -> None:
    """Fail fast (5 s) on an unreachable PostgreSQL server rather than wait for the pool."""
    if urlsplit(url).scheme.lower() not in ("postgresql", "postgres"):
        return
    try:
        import psycopg
    except ImportError:
        raise CliError('a PostgreSQL store needs: pip install "runeflow[postgres]"') from None
    from runeflow.stores.postgres import mask_password

    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        # libpq quotes what it cannot parse, e.g. 'invalid percent-encoded token: "s3%zz"'
        # for a password: mask it, and chain the driver's error only when it held none.
        reason = mask_password(str(exc), url)
        error = CliError(f"cannot reach the store {label}: {_one_line(reason)}")
        if reason == str(exc):
            raise error from exc
        raise error from None


def parse_json(text: str, what: str) -> Any:
    """Parse a JSON argument: inline JSON, ``@file.json``, or ``-`` for stdin.

    Raises:
        CliError: the file is missing or the text is not valid JSON.
    """
    source = text
    if text == "-":
        source = sys.stdin.read()
    elif text.startswith("@"):
        try:
            source = Path(text[1:]).read_text()
        except OSError as exc:
            raise CliError(f"{what}: cannot read {text[1:]!r}: {exc.strerror}") from exc
    try:
        return json.loads(source)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            f"{short(source.strip(), 60)}"
        ) from exc


def _run_context(text: str | None) -> dict[str, dict[str, Any]] | None:
    if text is None:
        return None
    context = parse_json(text, "--context")
    if not isinstance(context, dict) or not all(isinstance(v, dict) for v in context.values()):
        raise CliError(
            '--context must map component names (or "_global") to objects, e.g. '
            '\'{"_global": {"api_key": "..."}}\''
        )
    return context


if __name__ == "__main__":
    sys.exit(main())
