"""optuna-dashboard behind the service's login.

optuna-dashboard has no authentication of its own, and its API can delete studies. Here it
is mounted on the service's port (its own paths: ``/dashboard``, ``/api/``, ``/static/``)
behind a gate: ``POST /login`` with a token sets an HttpOnly session cookie, and every
dashboard request needs one: a page without it is sent to ``/login``, an API call gets 401.
A read-only token's session may look but not change anything (no POST, PUT, PATCH, DELETE).
Sessions live in the server's memory: a restart logs everyone out.
"""

from __future__ import annotations

import html
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING

from a2wsgi import WSGIMiddleware
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from groupwise.service._auth import Access, Tokens

if TYPE_CHECKING:
    import optuna

__all__ = [
    "COOKIE",
    "DASHBOARD_PATHS",
    "SESSION_S",
    "DashboardGate",
    "Sessions",
    "login_page",
    "run_dashboard",
    "safe_next",
]

COOKIE = "groupwise_session"
DASHBOARD_PATHS = ("/dashboard", "/api/", "/static/", "/favicon.ico")
SAFE_METHODS = ("GET", "HEAD")
SESSION_S = 12 * 3600


@dataclass
class Sessions:
    """Session id -> (access, expiry). Ids are 256-bit random; only the holder knows one."""

    tokens: Tokens
    no_auth: bool = False
    _open: dict[str, tuple[Access, float]] = field(default_factory=dict)

    def login(self, token: str) -> str | None:
        access = "full" if self.no_auth else self.tokens.access(token)
        if access is None:
            return None
        now = time.monotonic()
        self._open = {k: v for k, v in self._open.items() if v[1] > now}  # forget expired
        session = secrets.token_urlsafe(32)
        self._open[session] = (access, now + SESSION_S)
        return session

    def logout(self, session: str | None) -> None:
        self._open.pop(session or "", None)

    def access(self, session: str | None) -> Access | None:
        if self.no_auth:
            return "full"
        found = self._open.get(session or "")
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]


def session_of(scope: Scope) -> str | None:
    header = dict(scope.get("headers") or []).get(b"cookie", b"").decode("latin-1")
    morsel = SimpleCookie(header).get(COOKIE) if header else None
    return morsel.value if morsel else None


class DashboardGate:
    """Sends the dashboard's paths to optuna-dashboard (a WSGI app) once a session allows
    it, and everything else to the API."""

    def __init__(self, api: ASGIApp, dashboard: object, sessions: Sessions) -> None:
        self.api = api
        self.dashboard = WSGIMiddleware(dashboard)  # type: ignore[arg-type]
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(DASHBOARD_PATHS):
            await self.api(scope, receive, send)
            return
        access = self.sessions.access(session_of(scope))
        response: Response | None = None
        if access is None and path.startswith("/dashboard"):
            target = urllib.parse.quote(path + _query(scope), safe="/?=&")
            response = RedirectResponse(f"/login?next={target}", status_code=303)
        elif access is None:
            response = JSONResponse({"error": "log in first: POST /login"}, status_code=401)
        elif access != "full" and scope.get("method", "GET") not in SAFE_METHODS:
            response = JSONResponse(
                {"error": "this session's token is read-only; the dashboard may only look"},
                status_code=403,
            )
        if response is not None:
            await response(scope, receive, send)
            return
        await self.dashboard(_complete(scope), receive, send)  # type: ignore[arg-type]


def _complete(scope: Scope) -> Scope:
    """The request as optuna-dashboard needs it: its static files and favicon read
    ``Accept-Encoding`` unconditionally (a KeyError, answered 500, for a client that sends
    none, as curl or a script may); "identity" is what no header means (RFC 9110 12.5.3)."""
    headers = list(scope.get("headers") or [])
    if not any(name.lower() == b"accept-encoding" for name, _ in headers):
        headers.append((b"accept-encoding", b"identity"))
    return {**scope, "headers": headers}


def _query(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    return f"?{query}" if query else ""


def login_page(next_path: str, failed: bool = False) -> HTMLResponse:
    warning = "<p role='alert'>That token was not accepted.</p>" if failed else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>groupwise: log in</title></head>
<body style="font-family: sans-serif; max-width: 28em; margin: 4em auto">
<h1>groupwise</h1>
<p>Log in with an API token to see the dashboard.</p>{warning}
<form method="post" action="/login">
<input type="hidden" name="next" value="{html.escape(next_path)}">
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">Log in</button>
</form></body></html>"""
    return HTMLResponse(body, status_code=401 if failed else 200)


def safe_next(target: str | None) -> str:
    """Only a dashboard path of this server: never an open redirect elsewhere."""
    if target and target.startswith("/dashboard") and "//" not in target and "\\" not in target:
        return target
    return "/dashboard"


def run_dashboard(storage: optuna.storages.BaseStorage, host: str, port: int) -> None:
    """optuna-dashboard alone on a study database, with no login (``groupwise dashboard``)."""
    from optuna_dashboard import run_server

    run_server(storage, host=host, port=port)
