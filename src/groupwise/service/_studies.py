"""The ``/studies`` routes: submit a study (it runs as a job), read its state, trials, best
configs and comparisons, and stop it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from groupwise.analysis import best_document, best_trials, compare, study_status, trial_config
from groupwise.analysis import trial_page as read_trial_page
from groupwise.errors import SpecError, TaskError
from groupwise.service._deps import Reader, Writer, jobs, reader, settings
from groupwise.service._errors import ServiceError
from groupwise.store import Job
from groupwise.studyfiles import StudySpec, parse_yaml_text, read_study_document

__all__ = ["studies"]

log = logging.getLogger("groupwise.service")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
SUBMIT = "POST /studies"

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

    given = settings(request)
    data = _document(content_type, body)
    spec = read_study_document(data, where=SUBMIT, spaces=given.spaces)
    _check_task(spec, given.allow_task_modules)
    plan = make_plan(spec)  # every check `groupwise validate` makes, nothing written
    check_launch(plan, given.storage)  # an existing study of this name must be this one
    known = jobs(request).get(spec.name)
    job = jobs(request).submit(spec.name, _inlined(data, given.spaces), plan.fingerprint)
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
    submitted = {job.study: job for job in jobs(request).all()}
    names = set(submitted) | set(reader(request).names())
    return [
        {"name": n, "state": submitted[n].state if n in submitted else None, "url": f"/studies/{n}"}
        for n in sorted(names)
    ]


def _study(request: Request, name: str) -> tuple[Job | None, bool]:
    """The study's job (None for a study launched from the CLI), and whether Optuna has the
    study yet (a queued job's has not); 404 if neither exists."""
    job = jobs(request).get(name)
    stored = name in reader(request).names()
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
        status = study_status(reader(request), name)[0]
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
    page = read_trial_page(name, reader(request), state=state, offset=offset, limit=limit)
    return {"total": page.total, "offset": page.offset, "trials": list(page.trials)}


@studies.get("/{name}/best", summary="The best trials, as `groupwise best --format json`")
def get_best(
    request: Request, name: str, access: Reader, top: Annotated[int, Query(ge=1, le=1000)] = 1
) -> dict[str, Any]:
    _study(request, name)
    return best_document(best_trials(name, reader(request), top), top)


@studies.get(
    "/{name}/config",
    summary="A trial's config (default: the best) as the YAML build_optimizer loads",
    response_class=PlainTextResponse,
)
def get_config(
    request: Request, name: str, access: Reader, trial: Annotated[int | None, Query(ge=0)] = None
) -> PlainTextResponse:
    _study(request, name)
    storage = reader(request)
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
    found = compare(name, reader(request))
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
    job = jobs(request).request_stop(name)
    request.app.state.runner.wake()
    return {"name": name, "state": job.state}
