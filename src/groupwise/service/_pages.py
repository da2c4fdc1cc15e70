"""The routes around the API: ``/health`` (no token needed) and the dashboard's login and
logout pages (optuna-dashboard itself is mounted behind ``_dashboard.DashboardGate``)."""

from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from groupwise.service._dashboard import COOKIE, SESSION_S, login_page, safe_next
from groupwise.service._deps import reader, settings
from groupwise.store import ping

__all__ = ["health", "pages"]

health = APIRouter(tags=["health"])


@health.get(
    "/health",
    summary="Database and Ray reachable (no token needed)",
    responses={503: {"description": "The database or Ray cannot be reached (the same body)"}},
)
def get_health(request: Request) -> JSONResponse:
    database = ping(reader(request).storage)
    from groupwise.execution import unreachable  # a TCP connect; no Ray

    head = request.app.state.runner.head
    address = settings(request).ray_address or (head.address if head and head.alive() else None)
    if address is None:
        ray = "not started (this server starts a local head with the next job)"
    else:
        ray = "unreachable" if unreachable(address) else "ok"
    ok = database == "ok" and ray != "unreachable"
    status = "ok" if ok else "degraded"
    body = {"status": status, "database": database, "ray": ray, "ray_address": address}
    return JSONResponse(body, status_code=200 if ok else 503)


pages = APIRouter(include_in_schema=False)


@pages.get("/login")
def get_login(next: str | None = None) -> HTMLResponse:
    return login_page(safe_next(next))


@pages.post("/login")
async def post_login(request: Request) -> Response:
    """A form's token -> an HttpOnly session cookie, and on to the dashboard."""
    form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
    target = safe_next(form.get("next", [None])[0])
    session = request.app.state.sessions.login(form.get("token", [""])[0])
    if session is None:
        return login_page(target, failed=True)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session,
        max_age=SESSION_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@pages.post("/logout")
def post_logout(request: Request) -> Response:
    request.app.state.sessions.logout(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
