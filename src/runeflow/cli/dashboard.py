"""``runeflow ui``: serve the web dashboard over a store (extra ``runeflow[ui]``)."""

from __future__ import annotations

import argparse
import logging
import os
import socket

from runeflow.cli.common import EXIT_OK, CliError, note, open_store, store_label
from runeflow.errors import UsageError

__all__ = ["TOKEN_ENV", "cmd_ui"]

TOKEN_ENV = "RUNEFLOW_UI_TOKEN"
"""The environment variable holding the dashboard's access token (``--token``)."""


def cmd_ui(args: argparse.Namespace) -> int:
    """``runeflow ui``: serve the dashboard until Ctrl-C (or SIGTERM)."""
    try:
        import uvicorn

        from runeflow.ui import check_token, create_app
        from runeflow.ui.security import LOCAL_HOSTS, is_local
    except ImportError as exc:
        raise CliError(
            f'the dashboard needs: pip install "runeflow[ui]" ({exc.name or exc} is missing)'
        ) from exc
    token = args.token or os.environ.get(TOKEN_ENV) or None
    local = is_local(args.host)
    if not local and token is None:
        raise CliError(
            f"binding to {args.host} makes the dashboard reachable from other machines: give "
            f"--token TOKEN (or set {TOKEN_ENV}), which every request must then carry"
        )
    if token is not None:
        try:
            check_token(token)
        except UsageError as exc:
            raise CliError(f"--token: {exc}") from None
    _check_port(args.host, args.port)
    store = open_store(args, create=False)
    if store is None:
        raise CliError(f"there is no store at {store_label(args)} yet: give --store URL")
    hosts = {*LOCAL_HOSTS, args.host.strip("[]")} if local else None
    app = create_app(store, read_only=args.read_only, token=token, allowed_hosts=hosts)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    mode = ", read-only" if args.read_only else ""
    note(f"runeflow dashboard for {store_label(args)}{mode}: http://{shown}:{args.port}/")
    if token is not None:
        note(f"open it once as http://{shown}:{args.port}/?token=TOKEN (the token you gave)")
    note("Ctrl-C stops it")
    level = logging.getLogger("runeflow").getEffectiveLevel()  # as -v / -vv set it
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level="info" if level <= logging.INFO else "warning",
            access_log=level <= logging.DEBUG,
            server_header=False,
            lifespan="off",
        )
    finally:
        store.close()
    return EXIT_OK


def _check_port(host: str, port: int) -> None:
    """Fail now, with the reason, when ``host:port`` cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host.strip("[]"), port))
    except OSError as exc:
        raise CliError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another --port, or "
            "stop what uses it"
        ) from exc
