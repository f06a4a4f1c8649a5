"""What every ``runeflow`` command shares: exit codes, messages, the store, ids and JSON input."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runeflow.cli.output import short
from runeflow.errors import RuneflowError, UntrustedDefinitionError
from runeflow.stores import store_from_url
from runeflow.stores.base import Store

__all__ = [
    "DEFAULT_STORE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "EXIT_WAITING",
    "CliError",
    "error",
    "instance_id",
    "note",
    "one_line",
    "open_store",
    "parse_json",
    "run_context",
    "store_label",
    "store_url",
    "untrusted_hint",
]

EXIT_OK = 0
"""The instance is idle (nothing left to do) or the command succeeded."""
EXIT_FAILED = 1
"""The instance failed, has a final failure, or was stopped; a named instance could not be
recovered or deleted; or an internal error."""
EXIT_USAGE = 2
"""Usage or input error: bad arguments or JSON, unknown file/attribute/id, unreachable store."""
EXIT_WAITING = 3
"""The instance waits for an external event or a timer (``run``, ``send``, ``resume``)."""
EXIT_TIMEOUT = 4
"""``runeflow wait`` gave up: the instance had not settled within ``--timeout``."""
EXIT_INTERRUPTED = 130
"""Interrupted with Ctrl-C (the instance is checkpointed and resumable)."""

DEFAULT_STORE = "sqlite:///runeflow.db"
"""The store used without ``--store`` or ``RUNEFLOW_STORE``: SQLite in the current directory."""

log = logging.getLogger("runeflow.cli")


class CliError(RuneflowError):
    """A problem with what the user asked for: one line on stderr, exit code 2."""


def error(message: str) -> None:
    """Print ``runeflow: error: MESSAGE`` on stderr."""
    print(f"runeflow: error: {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    """Print a message for the user on stderr (stdout is kept for data)."""
    print(message, file=sys.stderr, flush=True)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(text.split())


# --- arguments --------------------------------------------------------------------------------


def instance_id(text: str) -> str:
    """The argparse ``type`` of every instance id: refuses empty and whitespace-only ids.

    Raises:
        argparse.ArgumentTypeError: the id is empty, blank, too long or holds control
            characters (argparse turns it into a usage error, exit code 2).
    """
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"an instance id cannot be empty or only whitespace (got {text!r})"
        )
    if len(text) > 255 or any(ord(ch) < 32 for ch in text):
        raise argparse.ArgumentTypeError(
            f"instance id {text[:40]!r} is not usable: keep it under 256 characters, without "
            "control characters"
        )
    return text


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


def run_context(text: str | None) -> dict[str, dict[str, Any]] | None:
    """Parse ``--context``: component names (or ``"_global"``) mapped to objects.

    Raises:
        CliError: it is not valid JSON, or not shaped that way.
    """
    if text is None:
        return None
    context = parse_json(text, "--context")
    if not isinstance(context, dict) or not all(isinstance(v, dict) for v in context.values()):
        raise CliError(
            '--context must map component names (or "_global") to objects, e.g. '
            '\'{"_global": {"api_key": "..."}}\''
        )
    return context


# --- stores -----------------------------------------------------------------------------------


def store_url(args: argparse.Namespace) -> str:
    """``--store``, else ``$RUNEFLOW_STORE``, else :data:`DEFAULT_STORE`."""
    return str(getattr(args, "store", None) or os.environ.get("RUNEFLOW_STORE") or DEFAULT_STORE)


def store_label(args: argparse.Namespace) -> str:
    """The store URL without its password, for messages."""
    url = store_url(args)
    parts = urlsplit(url)
    if parts.password is None:
        return url
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
    url, label = store_url(args), store_label(args)
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
    log.info("opening the store %s", label)
    try:
        store: Store = store_from_url(url)
        store.setup()
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    except (RuneflowError, OSError, sqlite3.Error) as exc:
        raise CliError(f"cannot open the store {label}: {one_line(str(exc))}") from exc
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
        failure = CliError(f"cannot reach the store {label}: {one_line(reason)}")
        if reason == str(exc):
            raise failure from exc
        raise failure from None


def untrusted_hint(exc: UntrustedDefinitionError) -> str:
    """The CLI's wording of an instance whose definition this command was not given."""
    if exc.path is None:
        return (
            f"no definition for workflow {exc.workflow_name!r}: pass --definition "
            "PATH/file.py:ATTR or package.module:ATTR (--workflows for recover and worker)"
        )
    return (
        f"workflow {exc.workflow_name!r} was started from {exc.path!r}; runeflow does not "
        f"import code a store names: pass --definition {exc.path} (--workflows for recover "
        "and worker), or --trust MODULE for a store only you write to"
    )
