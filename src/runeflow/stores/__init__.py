"""Stores persist workflow instances: event logs, snapshots, facts, timers and leases.

:class:`MemoryStore` is the default; :class:`SQLiteStore` is the embedded durable store;
:class:`PostgresStore` (extra ``runeflow[postgres]``) serves several machines. Importing this
package never needs psycopg: the Postgres store is loaded when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runeflow.stores.base import Append, Capabilities, InstanceMeta, Store, Timer
from runeflow.stores.memory import MemoryStore
from runeflow.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from runeflow.stores.postgres import PostgresStore

__all__ = [
    "Append",
    "Capabilities",
    "InstanceMeta",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "Store",
    "Timer",
    "store_from_url",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from runeflow.stores.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def store_from_url(url: str, **options: Any) -> Store:
    """Open the store a URL names.

    Accepted forms: ``memory://``; ``sqlite:///relative/path.db`` and
    ``sqlite:////absolute/path.db``; ``postgresql://...`` or ``postgres://...`` (a libpq
    connection URL). ``options`` go to the store's constructor.

    Raises:
        ValueError: when the URL's scheme is unknown or it names no database.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == "memory":
        if url.rstrip("/") != "memory:":
            raise ValueError(f"a memory store URL takes no path: use 'memory://', not {url!r}")
        return MemoryStore(**options)
    if scheme == "sqlite":
        path = url[len("sqlite:///") :] if url.lower().startswith("sqlite:///") else ""
        if not path:
            raise ValueError(
                f"bad SQLite URL {url!r}: use 'sqlite:///relative/path.db' or "
                "'sqlite:////absolute/path.db'"
            )
        return SQLiteStore(path, **options)
    if scheme in ("postgresql", "postgres"):
        from runeflow.stores.postgres import PostgresStore

        return PostgresStore(url, **options)
    raise ValueError(
        f"unknown store URL {url!r}: expected 'memory://', 'sqlite:///path.db' or "
        "'postgresql://user@host/dbname'"
    )
