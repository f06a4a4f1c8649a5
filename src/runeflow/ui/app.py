"""The dashboard's ASGI application (Starlette): pages, the JSON API, static files.

Pages are small HTML shells; the browser fills them from the JSON API with the DOM's
``textContent`` (never markup made of stored text), and the graph is an SVG drawing made and
escaped on the server (:func:`runeflow.drawing.to_svg`). Every route is a thin wrapper
around one :class:`~runeflow.ui.service.Dashboard` method, run in a worker thread (the
stores block). See the README's "Dashboard" section for the API.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from runeflow.errors import (
    CodecError,
    InstanceStateError,
    RuneflowError,
    StoreError,
    StoreUnavailableError,
    UsageError,
    WorkflowNotFoundError,
)
from runeflow.stores import store_from_url
from runeflow.stores.base import Store
from runeflow.ui.security import Access, ASGIApp, Guard
from runeflow.ui.service import Dashboard, ReadOnlyError

__all__ = ["build_app"]

log = logging.getLogger("runeflow.ui")

STATIC = Path(__file__).with_name("static")
_MAX_BODY = 1 << 20
_STATUS: list[tuple[type[RuneflowError], int]] = [
    (ReadOnlyError, 403),
    (WorkflowNotFoundError, 404),
    (InstanceStateError, 409),
    (UsageError, 400),
    (CodecError, 422),
    (StoreUnavailableError, 503),
    (StoreError, 500),
]


def build_app(
    store: Store | str,
    *,
    read_only: bool = False,
    token: str | None = None,
    hosts: frozenset[str] | None = None,
    csrf_secret: str | None = None,
) -> ASGIApp:
    """The dashboard as an ASGI application (see :func:`runeflow.ui.create_app`)."""
    opened = store_from_url(store) if isinstance(store, str) else store
    dashboard = Dashboard(opened, read_only=read_only)
    seed = csrf_secret or token or secrets.token_urlsafe(32)
    csrf = hmac.new(seed.encode(), b"runeflow-ui-csrf", hashlib.sha256).hexdigest()
    pages = _Pages(dashboard, csrf)
    routes = [
        Route("/", pages.index),
        Route("/instances/{workflow_id:path}", pages.instance),
        Route("/api/session", pages.session),
        Route("/api/instances", _get(lambda r: dashboard.instances(_query(r)))),
        Route(
            "/api/instances/{workflow_id:path}",
            _get(lambda r: dashboard.instance(_id(r), r.query_params.get("since", ""))),
        ),
        Route("/api/summaries", _get(lambda r: dashboard.summaries(r.query_params.getlist("id")))),
        Route(
            "/api/events/{workflow_id:path}",
            _get(
                lambda r: dashboard.events(
                    _id(r), after=_int(r, "after", 0), limit=_int(r, "limit", 100)
                )
            ),
        ),
        Route(
            "/api/facts/{workflow_id:path}",
            _get(lambda r: dashboard.fact(_id(r), r.query_params.get("fact", ""))),
        ),
        Route("/api/graph/{workflow_id:path}", pages.graph),
        *(
            Route(
                f"/api/{name}/{{workflow_id:path}}",
                _post(getattr(dashboard, name)),
                methods=["POST"],
            )
            for name in ("resume", "stop", "retry", "recover")
        ),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app: ASGIApp = Starlette(routes=routes)
    return Guard(app, Access(token=token, csrf=csrf, hosts=hosts))


class _Pages:
    """The HTML shells (filled in the browser from the JSON API) and the SVG route."""

    def __init__(self, dashboard: Dashboard, csrf: str) -> None:
        self.dashboard = dashboard
        self.csrf = csrf

    def _shell(self, request: Request, name: str, instance: str = "") -> Response:
        text = (STATIC / name).read_text(encoding="utf-8")
        fields = {
            "base": str(request.scope.get("root_path", "")),
            "csrf": self.csrf,
            "read_only": "true" if self.dashboard.read_only else "false",
            "instance": instance,
        }
        for key, value in fields.items():
            text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
        response: Response = HTMLResponse(text)
        return response

    def index(self, request: Request) -> Response:
        return self._shell(request, "index.html")

    def instance(self, request: Request) -> Response:
        return self._shell(request, "instance.html", _id(request))

    def session(self, request: Request) -> Response:
        return _json({"csrf": self.csrf, "read_only": self.dashboard.read_only})

    def graph(self, request: Request) -> Response:
        try:
            svg = self.dashboard.graph_svg(_id(request))
        except RuneflowError as exc:
            return _error(exc)
        response: Response = Response(svg, media_type="image/svg+xml")
        return response


def _get(work: Callable[[Request], Any]) -> Callable[[Request], Response]:
    """A GET route answering ``work(request)`` as JSON (an error as ``{"error": ...}``)."""

    def endpoint(request: Request) -> Response:
        try:
            return _json(work(request))
        except RuneflowError as exc:
            return _error(exc)
        except Exception as exc:
            return _internal(exc)

    return endpoint


def _post(action: Callable[[str, Any], dict[str, Any]]) -> Callable[[Request], Awaitable[Response]]:
    """A POST route running ``action(workflow_id, body)`` in a worker thread."""

    async def endpoint(request: Request) -> Response:
        try:
            raw = await _body(request)
            try:
                body: Any = json.loads(raw or b"{}")
            except ValueError as exc:
                raise UsageError(f"the request body is not JSON: {exc}") from None
            result = await run_in_threadpool(action, _id(request), body)
            return _json(result)
        except RuneflowError as exc:
            return _error(exc)
        except Exception as exc:
            return _internal(exc)

    return endpoint


async def _body(request: Request) -> bytes:
    """The request's body, refused past :data:`_MAX_BODY` bytes (before reading it all)."""
    length = (request.headers.get("content-length") or "0").strip()
    if not (length.isascii() and length.isdigit()):
        raise UsageError(f"Content-Length must be a whole number of bytes, not {length[:20]!r}")
    if int(length) > _MAX_BODY:
        raise UsageError("the request body is larger than 1 MiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_BODY:
            raise UsageError("the request body is larger than 1 MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _internal(exc: Exception) -> Response:
    """A bug, not a bad request: logged with its traceback, answered as JSON."""
    log.exception("dashboard request failed")
    message = f"internal error: {type(exc).__name__}: {exc} (the server's log has the traceback)"
    return _json({"error": {"type": "InternalError", "message": message}}, 500)


def _error(exc: RuneflowError) -> Response:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
    if status >= 500:
        log.warning("dashboard request failed: %s", exc)
    return _json({"error": {"type": type(exc).__name__, "message": str(exc)}}, status)


def _json(data: Any, status: int = 200) -> Response:
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or infinity somewhere in a stored value: JSON has no word for it
        text = json.dumps(_finite(data), ensure_ascii=False)
    response: Response = Response(text, status_code=status, media_type="application/json")
    return response


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _id(request: Request) -> str:
    value: str = request.path_params["workflow_id"]
    return value


def _query(request: Request) -> dict[str, list[str]]:
    params = request.query_params
    return {key: params.getlist(key) for key in params}


def _int(request: Request, name: str, default: int) -> int:
    text: str = request.query_params.get(name, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {text[:20]!r}") from None
