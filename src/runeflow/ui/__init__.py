"""The web dashboard (extra ``runeflow[ui]``): every instance of a store, its graph, events
and failures, and the actions a user takes on them.

``runeflow ui --store URL`` serves it; :func:`create_app` gives the same ASGI application to
mount in your own (Starlette, FastAPI, any ASGI server)::

    from starlette.applications import Starlette
    from starlette.routing import Mount
    import runeflow as rf
    from runeflow.ui import create_app

    app = Starlette(routes=[Mount("/runeflow", app=create_app(rf.SQLiteStore("runeflow.db")))])

Without a token it answers only to local host names (``localhost``, ``127.0.0.1``, ``::1``):
name the hosts it is reached by with ``allowed_hosts=`` (see :func:`create_app`).

It reads the store as ``runeflow list`` and ``runeflow show`` do (:mod:`runeflow.view`) and
acts through :class:`runeflow.Client`: see the README's "Dashboard" section.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Literal

from runeflow.errors import UsageError
from runeflow.stores.base import Store
from runeflow.ui.security import LOCAL_HOSTS

__all__ = ["INSTALL_HINT", "check_token", "create_app"]

INSTALL_HINT = 'the dashboard needs: pip install "runeflow[ui]"'

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]
"""An ASGI application."""


def create_app(
    store: Store | str,
    *,
    read_only: bool = False,
    token: str | None = None,
    allowed_hosts: Iterable[str] | Literal["*"] | None = None,
    csrf_secret: str | None = None,
) -> ASGIApp:
    """The dashboard over ``store`` as an ASGI application, to serve or mount.

    Args:
        store: a store, or a store URL (``sqlite:///path.db``, ``postgresql://...``).
        read_only: refuse every action (sending events, stop, retry, recover): HTTP 403.
        token: when given, every request must carry it (``Authorization: Bearer TOKEN``,
            or the cookie set by opening the dashboard once with ``?token=TOKEN``).
        allowed_hosts: accept only requests whose ``Host`` is one of these names (without
            the port; case does not matter). By default: without a token, only the local
            names ``localhost``, ``127.0.0.1`` and ``::1`` (against DNS rebinding); with a
            token, any. ``"*"``: any host, token or not (the host is then checked by
            something in front of the dashboard, or nothing).
        csrf_secret: derive the CSRF token from this (default: from ``token``, else a random
            one per process); give the same secret to every process serving the dashboard.

    Raises:
        ImportError: Starlette is not installed (the message says how to install it).
        UsageError: the token is too short or holds characters a cookie cannot carry, or
            ``allowed_hosts`` is a single name rather than a collection of them.
    """
    if token is not None:
        check_token(token)
    hosts = _hosts(allowed_hosts, token)
    try:
        from runeflow.ui.app import build_app
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "starlette":
            raise ImportError(INSTALL_HINT) from exc
        raise
    return build_app(store, read_only=read_only, token=token, hosts=hosts, csrf_secret=csrf_secret)


def _hosts(
    allowed_hosts: Iterable[str] | Literal["*"] | None, token: str | None
) -> frozenset[str] | None:
    """The ``Host`` names the dashboard accepts, in lower case (``None``: any)."""
    if allowed_hosts is None:
        return None if token is not None else LOCAL_HOSTS
    if allowed_hosts == "*":
        return None
    if isinstance(allowed_hosts, str):
        raise UsageError(
            f"allowed_hosts must be a collection of host names ({{{allowed_hosts!r}}}) or "
            f'"*" for any host, not the text {allowed_hosts!r}'
        )
    return frozenset(name.strip("[]").lower() for name in allowed_hosts)


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")


def check_token(token: str) -> None:
    """Refuse an access token that is too weak to guard the dashboard, or that a cookie and
    an ``Authorization`` header cannot carry as it is.

    Raises:
        UsageError: shorter than 16 characters, or holding anything but letters, digits and
            ``-._~+/=`` (``python -c "import secrets; print(secrets.token_urlsafe())"``
            makes a good one).
    """
    if len(token) < 16 or not set(token) <= _TOKEN_CHARS:
        raise UsageError(
            "the dashboard's access token must be at least 16 characters of letters, digits "
            'and -._~+/= (make one with: python -c "import secrets; '
            'print(secrets.token_urlsafe())")'
        )
