"""The REST API: FastAPI routes in front of the study database and the job runner.

Every error is one line, as the CLI prints it, in ``{"error": "..."}`` with a 4xx status:
401 no or unknown token, 403 a read-only token that submits or stops, 404 no such study,
409 a study that exists with other settings (or has no result yet), 413 a body over 1 MiB,
415 a body that is neither JSON nor YAML, 422 anything the study file checks refuse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import optuna_dashboard
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groupwise import __version__
from groupwise.analysis import best_document, best_trials, compare, study_status, trial_config
from groupwise.analysis import trial_page as read_trial_page
from groupwise.errors import GroupwiseError, SpecError, StudyError, TaskError
from groupwise.service._auth import Access, Tokens
from groupwise.service._dashboard import (
    COOKIE,
    SESSION_S,
    DashboardGate,
    Sessions,
    login_page,
    safe_next,
)
from groupwise.service._runner import Runner
from groupwise.spec import StudySpec, parse_yaml_text, read_study_document
from groupwise.store import Job, Jobs, StudyReader, ping

__all__ = ["MAX_BODY", "ServiceSettings", "create_app"]

log = logging.getLogger("groupwise.service")
MAX_BODY = 2**20
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
SUBMIT = "POST /studies"


@dataclass(frozen=True)
class ServiceSettings:
    storage: str
    spaces: Path  # the folder named search spaces are read from
    tokens: Tokens = field(default_factory=Tokens)
    no_auth: bool = False  # loopback only, checked by `groupwise serve`
    ray_address: str | None = None
    allow_task_modules: tuple[str, ...] = ()  # fnmatch patterns of module names
    run_jobs: bool = True  # False: an API over the database only (jobs are not started)
    poll_s: float = 1.0


class ServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


# -- bodies over 1 MiB, however they are sent ----------------------------------------------------
class BodyLimit:
    """Refuse a request body over ``limit`` bytes with 413, by its Content-Length or, sent
    in chunks, as soon as it passes the limit, before the route reads it."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLargeError:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _error(413, f"the request body is over {self.limit:,} bytes (1 MiB)")
        await response(scope, receive, send)


class _BodyTooLargeError(Exception):
    pass


# -- auth --------------------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False, description="A token from GROUPWISE_API_TOKENS")


def _access(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Access:
    settings: ServiceSettings = request.app.state.settings
    if settings.no_auth:
        return "full"
    access = settings.tokens.access(credentials.credentials if credentials else None)
    if access is None:
        raise ServiceError(
            401,
            "no token or an unknown one; send `Authorization: Bearer <token>` with a token "
            "from the server's GROUPWISE_API_TOKENS or GROUPWISE_API_READ_TOKENS",
        )
    return access


def can_read(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Access:
    return _access(request, credentials)


def can_write(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Access:
    access = _access(request, credentials)
    if access != "full":
        raise ServiceError(403, "this token is read-only; submitting and stopping need a full one")
    return access


Reader = Annotated[Access, Depends(can_read)]
Writer = Annotated[Access, Depends(can_write)]


# -- the app -----------------------------------------------------------------------------------
def create_app(settings: ServiceSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs = Jobs(settings.storage)  # creates the database and migrates it, once
        app.state.jobs = jobs
        runner = Runner(jobs, settings.storage, settings.ray_address, settings.poll_s)
        app.state.runner = runner
        if settings.run_jobs:
            runner.start()
        try:
            yield
        finally:
            if settings.run_jobs:
                runner.close()

    app = FastAPI(
        title="groupwise",
        version=__version__,
        summary="Launch, follow and query per-group optimizer searches.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sessions = Sessions(settings.tokens, settings.no_auth)
    # one storage for the server's life; read endpoints keep each study mirrored in memory
    app.state.reader = reader = StudyReader(settings.storage)
    dashboard = optuna_dashboard.wsgi(reader.storage)
    app.add_middleware(DashboardGate, dashboard=dashboard, sessions=app.state.sessions)
    app.add_middleware(BodyLimit)
    _handlers(app)
    app.include_router(health)
    app.include_router(studies)
    app.include_router(pages)
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return _error(error.status, str(error), headers)

    @app.exception_handler(GroupwiseError)
    async def groupwise_error(request: Request, error: GroupwiseError) -> JSONResponse:
        status = 409 if isinstance(error, StudyError) else 422
        return _error(status, str(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        got = first.get("input")
        shown = f" (got {json.dumps(got)[:80]})" if isinstance(got, str | int | float) else ""
        return _error(422, f"{where}: {first.get('msg', 'invalid')}{shown}")


def _settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


def _reader(request: Request) -> StudyReader:
    reader: StudyReader = request.app.state.reader
    return reader


def _jobs(request: Request) -> Jobs:
    jobs: Jobs = request.app.state.jobs
    return jobs


# -- the dashboard's login -----------------------------------------------------------------------
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


# -- /health -------------------------------------------------------------------------------------
health = APIRouter(tags=["health"])


@health.get("/health", summary="Database and Ray reachable (no token needed)")
def get_health(request: Request) -> JSONResponse:
    settings = _settings(request)
    database = ping(_reader(request).storage)
    from groupwise.execution import unreachable  # a TCP connect; no Ray

    head = request.app.state.runner.head
    address = settings.ray_address or (head.address if head and head.alive() else None)
    if address is None:
        ray = "not started (this server starts a local head with the next job)"
    else:
        ray = "unreachable" if unreachable(address) else "ok"
    ok = database == "ok" and ray != "unreachable"
    status = "ok" if ok else "degraded"
    body = {"status": status, "database": database, "ray": ray, "ray_address": address}
    return JSONResponse(body, status_code=200 if ok else 503)


# -- /studies ----------------------------------------------------------------------------------
studies = APIRouter(prefix="/studies", tags=["studies"])
STUDY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


@studies.post(
    "",
    status_code=201,
    summary="Submit a study (YAML or JSON); resubmitting it continues it to its new budget",
    openapi_extra=STUDY_BODY,
)
async def submit(request: Request, access: Writer) -> JSONResponse:
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    # Checking a study imports its task and builds its model: off the event loop.
    return await run_in_threadpool(_submit, request, content_type, body)


def _submit(request: Request, content_type: str, body: bytes) -> JSONResponse:
    from groupwise.execution import check_launch  # neither imports Ray
    from groupwise.plan import make_plan

    settings = _settings(request)
    data = _document(content_type, body)
    spec = read_study_document(data, where=SUBMIT, spaces=settings.spaces)
    _check_task(spec, settings.allow_task_modules)
    plan = make_plan(spec)  # every check `groupwise validate` makes, nothing written
    check_launch(plan, settings.storage)  # an existing study of this name must be this one
    jobs = _jobs(request)
    known = jobs.get(spec.name)
    job = jobs.submit(spec.name, _inlined(data, settings.spaces), plan.fingerprint)
    request.app.state.runner.wake()
    log.info("groupwise service: study %s submitted", spec.name)
    answer = {"name": spec.name, "url": f"/studies/{spec.name}", "state": job.state}
    return JSONResponse(answer, status_code=200 if known else 201)


def _document(content_type: str, body: bytes) -> Any:
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{SUBMIT}: the body is not UTF-8 text") from None
    if kind == "application/json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"{SUBMIT}: not valid JSON: {e}") from None
    if kind in YAML_TYPES:
        return parse_yaml_text(text, SUBMIT)
    raise ServiceError(
        415,
        f"{SUBMIT}: Content-Type {kind or '(none)'!r}; send the study as application/json or "
        "application/yaml",
    )


def _check_task(spec: StudySpec, allowed: tuple[str, ...]) -> None:
    """Registered tasks only, and `module:function` tasks whose module the operator
    allow-listed: a request must never make the server import a module of its choosing."""
    name = spec.task.name
    if ":" not in name:
        return
    module = name.split(":", 1)[0]
    if not any(fnmatch.fnmatchcase(module, pattern) for pattern in allowed):
        rule = ", ".join(allowed) if allowed else "none allowed"
        raise TaskError(
            f"{SUBMIT}: task: {name!r} is not allowed: this server runs registered tasks, and "
            f"module:function tasks only from modules matching --allow-task-module ({rule})"
        )


def _inlined(data: Mapping[str, Any], spaces: Path) -> dict[str, Any]:
    """The study as submitted, its named search space replaced by the space itself, so the
    job reads nothing but the database."""
    reference = data["search_space"]
    if isinstance(reference, str):
        path = spaces / reference
        reference = parse_yaml_text(path.read_text(encoding="utf-8"), str(path))
    return {**data, "search_space": reference}


@studies.get("", summary="Every study: jobs and studies launched from the CLI")
def list_studies(request: Request, access: Reader) -> list[dict[str, Any]]:
    jobs = {job.study: job for job in _jobs(request).all()}
    names = set(jobs) | set(_reader(request).names())
    return [
        {"name": n, "state": jobs[n].state if n in jobs else None, "url": f"/studies/{n}"}
        for n in sorted(names)
    ]


def _study(request: Request, name: str) -> tuple[Job | None, bool]:
    """The study's job (None for a study launched from the CLI), and whether Optuna has the
    study yet (a queued job's has not); 404 if neither exists."""
    job = _jobs(request).get(name)
    stored = name in _reader(request).names()
    if job is None and not stored:
        raise ServiceError(404, f"no study {name!r}; GET /studies lists them")
    return job, stored


@studies.get("/{name}", summary="A study's state, counts (as `groupwise status`) and best")
def get_study(request: Request, name: str, access: Reader) -> dict[str, Any]:
    job, stored = _study(request, name)
    body: dict[str, Any] = {"name": name, "state": None, "reason": None}
    if job is not None:
        end = job.ended_at or dt.datetime.now(dt.UTC)
        body |= {
            "state": job.state,
            "reason": job.reason,
            "budget": job.document.get("budget"),
            "submitted_at": job.submitted_at.isoformat(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "ended_at": job.ended_at.isoformat() if job.ended_at else None,
            "elapsed_s": (end - job.started_at).total_seconds() if job.started_at else None,
        }
    if stored:
        status = study_status(_reader(request), name)[0]
        counts = dataclasses.asdict(status.counts)
        body |= {
            "task": status.task,
            "metric": status.metric,
            "direction": status.direction,
            "counts": counts | {"finished": status.counts.finished},
            "best_value": status.counts.best_value,
            "best_trial": status.counts.best_trial,
        }
    return body


@studies.get("/{name}/trials", summary="The study's trials, by number, a page at a time")
def get_trials(
    request: Request,
    name: str,
    access: Reader,
    state: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    _study(request, name)
    page = read_trial_page(name, _reader(request), state=state, offset=offset, limit=limit)
    return {"total": page.total, "offset": page.offset, "trials": list(page.trials)}


@studies.get("/{name}/best", summary="The best trials, as `groupwise best --format json`")
def get_best(
    request: Request, name: str, access: Reader, top: Annotated[int, Query(ge=1, le=1000)] = 1
) -> dict[str, Any]:
    _study(request, name)
    return best_document(best_trials(name, _reader(request), top), top)


@studies.get(
    "/{name}/config",
    summary="A trial's config (default: the best) as the YAML build_optimizer loads",
    response_class=PlainTextResponse,
)
def get_config(
    request: Request, name: str, access: Reader, trial: Annotated[int | None, Query(ge=0)] = None
) -> PlainTextResponse:
    _study(request, name)
    storage = _reader(request)
    config = (
        best_trials(name, storage, 1)[0].config
        if trial is None
        else trial_config(name, trial, storage)
    )
    return PlainTextResponse(config.to_yaml(), media_type="application/yaml")


@studies.get("/{name}/compare", summary="Per scheme, per group and optimizer, or per group lr")
def get_compare(
    request: Request,
    name: str,
    access: Reader,
    by: Literal["scheme", "optimizer", "group"] = "scheme",
) -> dict[str, Any]:
    _study(request, name)
    found = compare(name, _reader(request))
    rows: tuple[Any, ...] = {
        "scheme": found.by_scheme,
        "optimizer": found.by_optimizer,
        "group": found.lr,
    }[by]
    return {
        "study": name,
        "metric": found.metric,
        "direction": found.direction,
        "top": found.top,
        "by": by,
        "rows": [dataclasses.asdict(r) for r in rows],
    }


@studies.post("/{name}/stop", summary="Start no more trials; the running ones finish")
def stop(request: Request, name: str, access: Writer) -> dict[str, Any]:
    if _study(request, name)[0] is None:
        raise ServiceError(
            409, f"study {name!r} was launched from the CLI, not submitted; stop it there"
        )
    job = _jobs(request).request_stop(name)
    request.app.state.runner.wake()
    return {"name": name, "state": job.state}
