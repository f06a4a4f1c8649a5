"""Who may use the dashboard, checked on every request before it reaches a page.

* **Host**: a request must name one of the allowed hosts (without a token, by default, the
  local names ``127.0.0.1``, ``localhost`` and ``::1``), which defeats DNS rebinding (a page
  on another site whose name resolves to 127.0.0.1).
* **Token** (required to bind anywhere else): every request carries it, as
  ``Authorization: Bearer TOKEN`` or in the ``rf_token`` cookie that opening the dashboard
  once with ``?token=TOKEN`` sets (HttpOnly, SameSite=Strict; the token is then taken out of
  the address). Compared in constant time.
* **Actions** (every method but GET and HEAD) need the header ``X-Runeflow-CSRF`` holding the
  dashboard's CSRF token (served in each page), a JSON body, and, when the browser says where
  the request comes from (``Origin``, ``Sec-Fetch-Site``), the dashboard's own origin. A
  cross-site form cannot set a header, and a cross-site script would need a CORS answer the
  dashboard never gives, so no other site can make a visitor's browser act.
* **Headers** on every answer: a Content-Security-Policy that allows only the dashboard's
  own scripts and styles (no inline script runs, whatever a stored value holds),
  ``X-Content-Type-Options: nosniff``, no framing, no referrer, no caching of data.

Pure ASGI: it needs no web framework, so it wraps any ASGI application.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["LOCAL_HOSTS", "Access", "Guard", "is_local"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Host names that reach only this machine."""

COOKIE = "rf_token"
CSRF_HEADER = "x-runeflow-csrf"

_SAFE = frozenset({"GET", "HEAD"})
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def is_local(host: str) -> bool:
    """Whether binding to ``host`` keeps the dashboard on this machine: ``localhost``, or a
    loopback address (``127.0.0.0/8``, ``::1``, brackets allowed). Any other name may
    resolve to any address, whatever it starts with (``127.example.net``), so it is not."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True, slots=True)
class Access:
    """What the guard checks."""

    token: str | None
    """The access token every request must carry; ``None``: none is asked for."""
    csrf: str
    """The token actions must carry in ``X-Runeflow-CSRF``."""
    hosts: frozenset[str] | None = None
    """The only ``Host`` names accepted, in lower case (``None``: any)."""


class Guard:
    """ASGI middleware enforcing :class:`Access` (see the module docstring)."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse the request, or pass it on and add the security headers to its answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, message, extra = refusal
            await _respond(scope, send, status, message, extra)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_security_headers(scope)]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(
        self, scope: Scope, headers: dict[str, str]
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """``(status, message, extra headers)`` when the request is refused, else ``None``."""
        access = self.access
        host = headers.get("host", "")
        if access.hosts is not None and _host_name(host).lower() not in access.hosts:
            return 403, f"unexpected Host {host[:80]!r}: {_OTHER_HOST}", []
        if access.token is not None:
            given = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))).get("token")
            if given is not None and scope["method"] in _SAFE:
                if not _same(given, access.token):
                    return 401, "wrong token", []
                return 303, "signed in", _sign_in(scope, access.token)
            if not self._has_token(headers):
                return 401, _NEEDS_TOKEN, []
        if scope["method"] not in _SAFE:
            return self._action_refusal(headers)
        return None

    def _has_token(self, headers: dict[str, str]) -> bool:
        token = self.access.token or ""
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and _same(auth[7:].strip(), token):
            return True
        try:
            cookie = SimpleCookie(headers.get("cookie", ""))
        except CookieError:
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and _same(morsel.value, token)

    def _action_refusal(
        self, headers: dict[str, str]
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        if not _same(headers.get(CSRF_HEADER, ""), self.access.csrf):
            return (
                403,
                (
                    f"actions need the {CSRF_HEADER} header holding the dashboard's CSRF token "
                    "(GET /api/session gives it)"
                ),
                [],
            )
        if not headers.get("content-type", "").startswith("application/json"):
            return 415, "actions take a JSON body (Content-Type: application/json)", []
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return 403, "actions are taken only from the dashboard's own pages", []
        origin = headers.get("origin")
        if origin not in (None, "null") and origin.split("://", 1)[-1] != headers.get("host"):
            return 403, "actions are taken only from the dashboard's own pages", []
        return None


_OTHER_HOST = (
    "this dashboard answers only to the host names it allows (without an access token, by "
    "default: localhost, 127.0.0.1 and [::1]); open it by one of them"
)
_NEEDS_TOKEN = (
    "this dashboard needs its access token: open it once as /?token=TOKEN (the token given "
    "to runeflow ui --token or RUNEFLOW_UI_TOKEN), or send Authorization: Bearer TOKEN"
)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _route_path(scope: Scope) -> str:
    """The request's path inside the dashboard, without the prefix it is mounted under.

    ASGI servers and Starlette (0.35 on) put the whole path in ``scope["path"]``, the
    mount's prefix in ``root_path``; older ones left the prefix out of ``path``: both are
    read here (as Starlette's own ``get_route_path`` does).
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "") or ""
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def _sign_in(scope: Scope, token: str) -> list[tuple[bytes, bytes]]:
    """Set the token cookie and send the browser to the same address without the token."""
    root = scope.get("root_path", "") or ""
    query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode()) if k != "token"]
    location = root + _route_path(scope) + (f"?{urlencode(query)}" if query else "")
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    cookie = f"{COOKIE}={token}; Path={root or '/'}; HttpOnly; SameSite=Strict{secure}"
    return [(b"location", location.encode()), (b"set-cookie", cookie.encode())]


def _security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    static = "/static/" in scope.get("path", "")
    return [
        (b"content-security-policy", _CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-cache" if static else b"no-store"),
    ]


async def _respond(
    scope: Scope, send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]]
) -> None:
    if _route_path(scope).startswith("/api/") or status == 303:
        body = json.dumps({"error": {"type": "AccessDenied", "message": message}}).encode()
        kind = b"application/json"
    else:
        body = _PAGE.format(message=html.escape(message)).encode()
        kind = b"text/html; charset=utf-8"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, *extra, *_security_headers(scope)],
        }
    )
    await send({"type": "http.response.body", "body": body})


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>runeflow dashboard</title></head><body><h1>runeflow dashboard</h1><p>{message}</p>
</body></html>"""
"""The page of a refused browser request (``message`` escaped)."""
