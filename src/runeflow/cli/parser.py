"""The ``runeflow`` argument parser: the global options and every command's arguments.

The global options (``--store``, ``--debug``, ``-v``) are accepted before the command and
after it. The command's copies default to ``argparse.SUPPRESS``, so that an option given
before the command is not overwritten by the command's default; ``-v`` counted after the
command goes to ``verbose_after`` and :func:`verbosity` adds both counts.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn

from runeflow.cli.common import DEFAULT_STORE, EXIT_USAGE, instance_id
from runeflow.cli.dashboard import TOKEN_ENV, cmd_ui
from runeflow.cli.inspecting import cmd_graph, cmd_show, cmd_wait
from runeflow.cli.listing import cmd_list
from runeflow.cli.manage import cmd_delete, cmd_prune, cmd_stop
from runeflow.cli.recover import cmd_recover
from runeflow.cli.running import EXECUTORS, cmd_resume, cmd_run, cmd_send, cmd_worker
from runeflow.runner import Status
from runeflow.stores.base import PRUNABLE

__all__ = ["build_parser", "verbosity"]

_STORE_HELP = (
    "memory://, sqlite:///path.db or postgresql://... "
    f"(default: $RUNEFLOW_STORE, else {DEFAULT_STORE})"
)
_VERBOSE_HELP = "log runner activity on stderr: -v info, -vv debug (default: warnings only)"
_DEFINITION_HELP = (
    "the workflow's code (PATH/file.py:ATTR or package.module:ATTR); runeflow never imports "
    "the path recorded in the store unless told to (--trust)"
)
_WORKFLOWS_HELP = "definitions to register: package.module, file.py, or either with :ATTR"
_TRUST_HELP = (
    "let this command import the definition path recorded with an instance when it is in "
    "MODULE (a package covers its submodules; a file path must match exactly). Repeatable. "
    "Only for a store no one else can write to: the store names the code that is run"
)


def _add_trust(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust", action="append", default=[], metavar="MODULE", help=_TRUST_HELP)


_STATUSES = [s.value for s in Status]

EPILOG = """\
global options (--store, --debug, -v) go before or after the command.

exit codes:
  0  the instance is idle (done), or the command succeeded
  1  the instance failed (status failed, a final step failure, or stopped); or a named
     instance could not be recovered or deleted
  2  usage or input error (bad JSON, unknown file, attribute or id, unreachable store)
  3  the instance is waiting for an event or a timer (run, send, resume)
  4  `runeflow wait` timed out
  130  interrupted (Ctrl-C)

`runeflow COMMAND --help` describes each command."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def verbosity(args: argparse.Namespace) -> int:
    """How many ``-v`` were given, before and after the command."""
    return int(getattr(args, "verbose", 0) or 0) + int(getattr(args, "verbose_after", 0) or 0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``runeflow`` command."""
    parser = _Parser(
        prog="runeflow",
        description="Run, inspect, resume and draw runeflow workflows.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"runeflow {_version()}")
    parser.add_argument("--store", metavar="URL", default=None, help=_STORE_HELP)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="count", default=0, help=_VERBOSE_HELP)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="URL", default=argparse.SUPPRESS, help=_STORE_HELP)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    common.add_argument(
        "-v",
        "--verbose",
        dest="verbose_after",
        action="count",
        default=argparse.SUPPRESS,
        help=_VERBOSE_HELP,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (
        _add_run,
        _add_list,
        _add_show,
        _add_wait,
        _add_resume,
        _add_send,
        _add_stop,
        _add_delete,
        _add_prune,
        _add_recover,
        _add_graph,
        _add_worker,
        _add_ui,
    ):
        add(sub, common)
    return parser


def _version() -> str:
    from runeflow import __version__

    return __version__


def _add_run(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        help="start an instance of a workflow and run it",
        description="Start an instance, feed it INPUT and follow it until it is idle, waiting "
        "or failed; print its results (output ports, or the last value of each final step). "
        "A failure is told on stderr with its traceback.",
        epilog="exit codes: 0 idle, 1 failed or stopped, 2 usage error, 3 waiting",
    )
    p.add_argument("target", metavar="PATH_OR_MODULE:ATTR", help="the workflow or its builder")
    p.add_argument("--input", required=True, metavar="JSON", help="JSON, @file.json or - (stdin)")
    p.add_argument("--id", type=instance_id, help="instance id (default: WORKFLOW-<random>)")
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
    p.add_argument(
        "--format",
        choices=("text", "table", "json"),
        default="text",
        help="text (default): the results as JSON on stdout, how it ended on stderr; table: "
        'the results as a table; json: one object {"id", "status", "results", "failures"}',
    )


def _add_list(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "list",
        parents=[common],
        help="list the stored instances",
        description="List the stored instances, oldest first, with their status, their "
        "failures (count and first failing component), the runner holding each and why one "
        "could not be loaded. Reads the store only.",
    )
    p.add_argument("--status", action="append", choices=_STATUSES, help="only these (repeatable)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_list)


def _add_show(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "show",
        parents=[common],
        help="an instance's status, timings, waits, timers, productions, failures",
        description="Describe a stored instance from its event log (nothing is run): its "
        "status and error, steps, open waits, timers, productions, and each failure with its "
        "component, attempt, error and traceback.",
    )
    p.add_argument("id", type=instance_id, metavar="ID")
    p.add_argument("--events", action="store_true", help="also print the event log")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=cmd_show)


def _add_wait(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "wait",
        parents=[common],
        help="block until an instance run elsewhere settles",
        description="Poll the store until the instance settles (idle, waiting, failed or "
        "stopped, with every command sent to it applied), or until its status is one of "
        "--status; then print how it ended. Runs nothing: a `runeflow worker` (or another "
        "process) runs the instance.",
        epilog="exit codes: 0 idle or waiting (or running, when asked for with --status), "
        "1 failed or stopped, 2 unknown instance or usage error, 4 timed out",
    )
    p.add_argument("id", type=instance_id, metavar="ID")
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="give up after this long")
    p.add_argument(
        "--status",
        nargs="+",
        action="extend",
        choices=_STATUSES,
        metavar="S",
        help=f"wait for one of these statuses instead ({', '.join(_STATUSES)}); failed and "
        "stopped always end the wait",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help='json: {"id", "status", "results", "failures", "error", "timed_out"}',
    )
    p.set_defaults(handler=cmd_wait)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 or more seconds")
    return value


def _add_resume(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "resume",
        parents=[common],
        help="deliver an event to a waiting instance",
        description="Deliver EVENT to the instance's open wait, then follow it like `run`. "
        "When a `runeflow worker` holds the instance, the event is recorded and the worker "
        "applies it.",
    )
    p.add_argument("id", type=instance_id, metavar="ID")
    p.add_argument("event")
    p.add_argument("--payload", metavar="JSON", help="data sent with the event")
    p.add_argument("--step", help="the waiting step, when several wait for the same event")
    p.add_argument("--definition", metavar="PATH_OR_MODULE:ATTR", help=_DEFINITION_HELP)
    _add_running_options(p)
    _add_trust(p)
    p.set_defaults(handler=cmd_resume)


def _add_send(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "send",
        parents=[common],
        help="feed more input to an instance",
        description="Feed INPUT to an existing instance, then follow it like `run`.",
    )
    p.add_argument("id", type=instance_id, metavar="ID")
    p.add_argument("input", metavar="INPUT", help="JSON, @file.json or - (stdin)")
    p.add_argument("--definition", metavar="PATH_OR_MODULE:ATTR", help=_DEFINITION_HELP)
    _add_running_options(p)
    _add_trust(p)
    p.set_defaults(handler=cmd_send)


def _add_stop(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "stop",
        parents=[common],
        help="stop an instance (it takes no more input or events)",
        description="Mark an instance stopped without running anything. When a running "
        "worker holds the instance, the stop is recorded in the store and applied there.",
    )
    p.add_argument("id", type=instance_id, metavar="ID")
    p.set_defaults(handler=cmd_stop)


def _add_delete(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "delete",
        parents=[common],
        help="delete instances from the store for good",
        description="Delete instances: their log, snapshots, timers, lease and metadata. "
        "Asks y/N on a terminal; without a terminal, --yes is required. An instance that a "
        "live worker holds is refused unless --force.",
        epilog="exit codes: 0 all deleted, 1 an id was unknown or held by a live worker, or "
        "the confirmation was declined, 2 no --yes without a terminal, or usage error",
    )
    p.add_argument("ids", nargs="+", type=instance_id, metavar="ID")
    p.add_argument("-y", "--yes", action="store_true", help="delete without asking")
    p.add_argument(
        "--force",
        action="store_true",
        help="delete even an instance a live worker holds (that worker's next write for it fails)",
    )
    p.set_defaults(handler=cmd_delete)


def _add_prune(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "prune",
        parents=[common],
        help="delete finished instances last updated longer ago than --older-than",
        description="Delete the finished instances (idle, failed, stopped; --status picks "
        "some) last updated longer ago than --older-than, with their log, snapshot and the "
        "fact values only they referred to, 100 per transaction. Running and waiting "
        "instances, instances a live worker holds and instances with a pending timer or "
        "command are never deleted. Prints the ids deleted; --dry-run lists what would be "
        "deleted and deletes nothing.",
        epilog="exit codes: 0 done (also when nothing was old enough), 2 usage error (a bad "
        "duration or status, an unreachable store)",
    )
    p.add_argument(
        "--older-than",
        required=True,
        type=_duration,
        metavar="DURATION",
        help="e.g. 30d, 12h, 90m, 45s, 2w, 1d12h, or a number of seconds",
    )
    p.add_argument(
        "--status",
        action="append",
        choices=list(PRUNABLE),
        help="only instances with this status (repeatable; default: idle, failed and stopped)",
    )
    p.add_argument("--dry-run", action="store_true", help="list them; delete nothing")
    p.add_argument("--limit", type=_count, metavar="N", help="delete at most N instances")
    p.add_argument(
        "--format",
        choices=("text", "table", "json"),
        default="text",
        help="text: the ids on stdout, a summary on stderr; table: id, workflow, status and "
        'last update; json: {"pruned", "dry_run", "updated_before", "statuses"}',
    )
    p.set_defaults(handler=cmd_prune)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def _duration(text: str) -> float:
    """Seconds in ``7d``, ``12h``, ``90m``, ``45s``, ``2w``, ``1d12h`` or a plain number."""
    spec = text.strip().lower()
    try:
        seconds = float(spec)
    except ValueError:
        parts = _DURATION_PART.findall(spec)
        if not parts or "".join(n + u for n, u in parts) != spec:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration: give a number with a unit, s, m, h, d or w "
                "(45s, 90m, 12h, 7d, 2w, 1d12h), or a number of seconds"
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: a duration is 0 or more (7d, 12h, 90m)")
    return seconds


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more")
    return value


def _add_recover(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "recover",
        parents=[common],
        help="load instances from the store and drive them here until they settle",
        description="Load the named instances (or, with --all, every running or waiting "
        "one) from the store into a runner in this process, carry on with their work until "
        "each settles, and print each one's status. An instance a live worker holds is "
        "refused (skipped with --all): it runs there. Give the IDs before --workflows.",
        epilog="exit codes: 0 every instance recovered and settled idle or waiting, 1 one "
        "could not be recovered (unknown, held elsewhere, no definition) or settled failed "
        "or stopped, 2 usage error",
    )
    p.add_argument("ids", nargs="*", type=instance_id, metavar="ID")
    p.add_argument("--all", action="store_true", help="every running or waiting instance")
    p.add_argument(
        "--workflows",
        nargs="+",
        action="extend",
        default=[],
        metavar="MODULE",
        help=_WORKFLOWS_HELP,
    )
    p.add_argument("--executor", choices=EXECUTORS, default="threads", help="default: threads")
    p.add_argument("--format", choices=("text", "json"), default="text")
    _add_trust(p)
    p.set_defaults(handler=cmd_recover)


def _add_graph(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "graph",
        parents=[common],
        help="draw a workflow (or an instance's state) as Mermaid or DOT",
        description="Print a workflow's graph; with --id, the instance's state on it: ran, "
        "running, waiting, failed, skipped (nodes colored, with counts).",
    )
    p.add_argument("target", nargs="?", metavar="PATH_OR_MODULE:ATTR")
    p.add_argument("--id", type=instance_id, help="draw this stored instance instead")
    p.add_argument(
        "--format",
        choices=("mermaid", "dot", "svg"),
        default="mermaid",
        help="mermaid (default), dot (Graphviz), or svg (drawn here, as the dashboard does)",
    )
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
        action="extend",
        default=[],
        metavar="MODULE",
        help=_WORKFLOWS_HELP,
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
    _add_trust(p)
    p.set_defaults(handler=cmd_worker)


def _add_ui(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ui",
        parents=[common],
        help="serve the web dashboard: instances, graphs, events, failures, actions",
        description="Serve the dashboard over the store (needs: pip install "
        '"runeflow[ui]"): the instances page, each instance\'s graph, events, facts and '
        "failures, and the actions (send an event, stop, retry, recover) unless --read-only. "
        "It listens on 127.0.0.1 unless told otherwise; any other address needs --token.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8077, help="port to listen on (default: 8077)")
    p.add_argument("--read-only", action="store_true", help="show everything, refuse every action")
    p.add_argument(
        "--token",
        default=None,
        help=f"an access token every request must carry (default: ${TOKEN_ENV}); required "
        "when --host is not a local address",
    )
    p.set_defaults(handler=cmd_ui)
