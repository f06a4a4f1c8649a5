"""Connecting to PostgreSQL for :class:`~runeflow.stores.postgres.PostgresStore`: a first
connection that fails fast with the server's reason, and passwords masked wherever a URL or
a driver's message is shown."""

from __future__ import annotations

import re
from urllib.parse import unquote

from runeflow.errors import StoreError

try:
    import psycopg
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]

__all__ = ["check_connect", "mask_dsn", "mask_password", "one_line"]

# The password of a URL (``scheme://user:password@host``: up to the last ``@``, so that an
# unencoded ``@`` or ``/`` in it is masked too), of a URL query (``?password=...``) and of a
# ``key=value`` connection string (``password=secret`` or ``password='quoted secret'``).
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*:)(.*)@", re.S)
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.I)
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)", re.I)


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***``, fit to show in a message.

    Handles ``postgresql://user:password@host/db`` URLs (and ``?password=`` in their query)
    and ``key=value`` connection strings (``password=...``, quoted or not).
    """
    if "://" in dsn:
        masked = _URL_PASSWORD.sub(r"\1***@", dsn, count=1)
        return _QUERY_PASSWORD.sub(r"\1***", masked)
    return _KEYWORD_PASSWORD.sub(r"\1***", dsn)


def _dsn_passwords(dsn: str) -> set[str]:
    """Every spelling of the password(s) ``dsn`` holds: raw, percent-decoded, unquoted."""
    found: set[str] = set()
    if "://" in dsn:
        url = _URL_PASSWORD.match(dsn)
        raw = [url.group(2)] if url else []
        raw += [m.group(2) for m in _QUERY_PASSWORD.finditer(dsn)]
        found.update(raw, (unquote(r) for r in raw))
    else:
        for m in _KEYWORD_PASSWORD.finditer(dsn):
            value = m.group(2)
            found.add(value)
            if value.startswith("'"):
                inner = value[1:-1] if len(value) > 1 and value.endswith("'") else value[1:]
                found.update((inner, re.sub(r"\\(.)", r"\1", inner)))
    if psycopg is not None:
        try:
            password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
        except psycopg.Error:
            password = None
        if password:
            found.add(str(password))
    found.discard("")
    return found


def mask_password(text: str, dsn: str) -> str:
    """``text`` (a driver's error message, say) with every trace of ``dsn``'s password masked.

    The DSN itself, quoted whole (libpq quotes a URL it cannot parse), becomes
    :func:`mask_dsn` of it; then any remaining spelling of the password becomes ``***``.
    """
    if not dsn:
        return text
    text = text.replace(dsn, mask_dsn(dsn))
    for secret in sorted(_dsn_passwords(dsn), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def one_line(text: str) -> str:
    """A multi-line libpq message on one line: hint lines (indented) join the line above."""
    parts: list[str] = []
    for line in text.strip().splitlines():
        if not line.strip():
            continue
        if parts and line[:1].isspace():
            end = "" if parts[-1][-1:] in ".?!:;" else "."
            parts[-1] += f"{end} {line.strip()}"
        else:
            parts.append(line.strip())
    return re.sub(r"\s+", " ", "; ".join(parts))


def check_connect(dsn: str, seconds: int) -> None:
    """Open and close one connection, so that a store that cannot connect fails now, with why.

    Raises:
        StoreError: the connection failed; the message names the target (password masked),
            gives the driver's reason and says what to check.
    """
    try:
        psycopg.connect(dsn, connect_timeout=seconds).close()
    except psycopg.Error as exc:
        raw = str(exc)
        reason = one_line(mask_password(raw, dsn)).removeprefix("connection failed: ")
        end = "" if reason[-1:] in ".?!" else "."
        error = StoreError(
            f"cannot open the PostgreSQL store at {mask_dsn(dsn)!r} "
            f"(connect_timeout={seconds}s): {reason}{end} Check that the server is running and "
            "reachable, and that the URL's host, port, user, password and database are right."
        )
        # Chain the driver's error only when it holds no password (its message may quote the
        # whole URL, say when libpq cannot parse it).
        if mask_password(raw, dsn) == raw:
            raise error from exc
        raise error from None
