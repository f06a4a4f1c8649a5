"""What a failed SQLite call means for a user of :class:`~runeflow.stores.sqlite.SQLiteStore`:
a busy database (retried), or a file that is no database, damaged, read-only, full."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from runeflow.errors import StoreError

__all__ = ["db_error", "is_busy"]


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` says the database is locked by another writer (worth a retry)."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def db_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """A :class:`StoreError` for a failed SQLite call, saying what is wrong with the file."""
    code = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    if code == "SQLITE_NOTADB" or "not a database" in text:
        return StoreError(
            f"{path} is not a SQLite database ({text}): give SQLiteStore the path of a "
            "runeflow database, or of a file that does not exist yet to create one"
        )
    if code == "SQLITE_CORRUPT" or "malformed" in text:
        return StoreError(
            f"the SQLite database {path} is damaged ({text}): restore it from a backup "
            f"(`sqlite3 {path} .recover` may save what is left)"
        )
    if code == "SQLITE_CANTOPEN" or "unable to open" in text:
        return StoreError(f"cannot open the SQLite database {path} ({text}): {_why_not(path)}")
    if code == "SQLITE_READONLY" or "readonly" in text:
        return StoreError(
            f"cannot write the SQLite database {path} ({text}): the file or its directory is "
            f"read-only (SQLite also writes {path.name}-wal and {path.name}-shm beside it). "
            "Make both writable, or copy the database to a writable place"
        )
    if code == "SQLITE_FULL":
        return StoreError(f"cannot write the SQLite database {path} ({text}): free some space")
    return StoreError(f"SQLite store at {path} failed: {text}")


def _why_not(path: Path) -> str:
    """Why SQLite may be unable to open ``path``, and what to do."""
    parent = path.parent
    if path.is_dir():
        return "it is a directory; give the path of a database file (created if missing)"
    if not parent.exists():
        return f"its directory {parent} does not exist; create it first"
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return "this process may not read and write it; fix its permissions"
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        return f"the file cannot be created: the directory {parent} is not writable"
    return "check the path, and that this process may read and write the file and its directory"
