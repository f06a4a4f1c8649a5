"""The ``runeflow`` command: run, inspect, wait for, resume, stop, recover, delete, prune
and draw workflow instances, serve them, and serve the dashboard.

::

    runeflow run PATH.py:ATTR --input JSON [--id ID] [--submit] [--format text|table|json]
    runeflow list [--status S] [--format table|json]
    runeflow show ID [--events] [--format text|json]
    runeflow wait ID [--timeout SECONDS] [--status S ...] [--format text|json]
    runeflow resume ID EVENT [--payload JSON] [--step STEP]
    runeflow send ID INPUT
    runeflow stop ID
    runeflow delete ID [ID ...] [--yes] [--force]
    runeflow prune --older-than DURATION [--status S ...] [--dry-run] [--limit N]
    runeflow recover [ID ...] [--all] [--workflows MODULE ...] [--format text|json]
    runeflow graph PATH.py:ATTR [--format mermaid|dot|svg]    runeflow graph --id ID
    runeflow worker [--workflows MODULE ...]
    runeflow ui [--host 127.0.0.1] [--port 8077] [--read-only] [--token TOKEN]

The global options go before or after the command: ``--store URL`` (default:
``$RUNEFLOW_STORE``, else the embedded SQLite file ``runeflow.db`` in the current directory),
``--debug`` (tracebacks instead of one-line errors) and ``-v``/``-vv`` (the ``runeflow``
loggers on stderr at INFO/DEBUG; warnings only without). A definition is
``path/to/file.py:attribute`` or ``package.module:attribute`` naming a Workflow or a function
that builds one; ``run`` records it (as an absolute path for a file) so that ``resume``,
``send`` and ``runeflow worker`` can rebuild the instance in another process.

Exit codes: 0 the instance is idle (done) or the command succeeded; 1 the instance failed
(status ``failed``, a component failed for good, or it was stopped), or a named instance
could not be recovered or deleted; 2 usage or input error (bad arguments or JSON, unknown
file, attribute or instance, unreachable store); 3 the instance is waiting for an event or a
timer; 4 ``runeflow wait`` timed out; 130 interrupted.

``rich`` (``pip install "runeflow[cli]"``) draws the progress bar and tables when the output
is a terminal; without it, or in a pipe, output is plain text and JSON.

The package: :mod:`~runeflow.cli.parser` (arguments), :mod:`~runeflow.cli.common` (exit
codes, the store, ids), :mod:`~runeflow.cli.running` (run, send, resume, worker),
:mod:`~runeflow.cli.recover`, :mod:`~runeflow.cli.inspecting` (show, graph, wait),
:mod:`~runeflow.cli.listing`, :mod:`~runeflow.cli.manage` (stop, delete, prune),
:mod:`~runeflow.cli.dashboard` (ui), and the presentation modules
:mod:`~runeflow.cli.report`, :mod:`~runeflow.cli.show`, :mod:`~runeflow.cli.graph` and
:mod:`~runeflow.cli.output`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from runeflow.cli.common import (
    DEFAULT_STORE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    EXIT_WAITING,
    CliError,
    error,
    one_line,
    open_store,
    parse_json,
    store_label,
    store_url,
)
from runeflow.cli.common import _check_postgres as _check_postgres
from runeflow.cli.loading import load_target, load_workflows
from runeflow.cli.parser import build_parser, verbosity
from runeflow.errors import RuneflowError

__all__ = [
    "DEFAULT_STORE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "EXIT_WAITING",
    "CliError",
    "build_parser",
    "load_target",
    "load_workflows",
    "main",
    "open_store",
    "parse_json",
    "store_url",
]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""How ``-v`` log lines look on stderr."""

_RUNS_INSTANCES = ("run", "send", "resume", "recover")

log = logging.getLogger("runeflow.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``runeflow`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit
    code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if os.getcwd() not in sys.path:  # like `python -m`: modules of the current directory
        sys.path.insert(0, os.getcwd())
    handler: Callable[[argparse.Namespace], int] = args.handler
    with _logging(verbosity(args)):
        return _run(handler, args)


def _run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    log.debug("runeflow %s on the store %s", args.command, store_label(args))
    try:
        return handler(args)
    except KeyboardInterrupt:
        if args.command in _RUNS_INSTANCES:
            error(
                "interrupted; the instance is checkpointed and `runeflow worker` can go on with it"
            )
        else:
            error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `runeflow show ID | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (RuneflowError, ValueError, OSError, ImportError, sqlite3.Error) as exc:
        if args.debug:
            traceback.print_exc()
        error(one_line(str(exc)) or type(exc).__name__)
        return EXIT_USAGE
    except Exception as exc:
        if args.debug:
            raise
        error(f"internal error: {type(exc).__name__}: {one_line(str(exc))} (--debug shows more)")
        return EXIT_FAILED


@contextmanager
def _logging(verbose: int) -> Iterator[None]:
    """The ``runeflow`` loggers on stderr: warnings, ``-v`` info, ``-vv`` debug. The handler is
    removed and the level restored on the way out (``main`` may run in-process, in tests)."""
    logger = logging.getLogger("runeflow")
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    previous = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # once, here: not again through a root handler
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
