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
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from groupwise.analysis import (
    best_document,
    best_trials,
    export_comment,
    noise_note,
    study_status,
    study_task,
    trial_config,
)
from groupwise.analysis import trial_page as read_trial_page
from groupwise.errors import SpecError, TaskError
from groupwise.service._deps import Reader, Writer, jobs, reader, settings
from groupwise.service._errors import ServiceError
from groupwise.service._openapi import DOCUMENT, responses
from groupwise.store import Job, TrialClass
from groupwise.studyfiles import parse_yaml_text, read_study_document

__all__ = ["studies", "study_of"]

log = logging.getLogger("groupwise.service")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
SUBMIT = "POST /studies"

studies = APIRouter(prefix="/studies", tags=["studies"])
STUDY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": DOCUMENT}},
            "application/yaml": {
                "schema": {"type": "string", "description": "A study file, as YAML text"}
            },
        },
    }
}


@studies.post(
    "",
    status_code=201,
    summary="Submit a study (YAML or JSON); resubmitting it continues it to its new budget",
    openapi_extra=STUDY_BODY,
    responses={200: {"description": "Submitted again"}, **responses(401, 403, 409, 413, 415, 422)},
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
    _check_task(spec.task.name, given.allow_task_modules, f"{SUBMIT}: task")
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


def _check_task(name: str, allowed: tuple[str, ...], where: str) -> None:
    """Registered tasks only, and `module:function` tasks whose module the operator
    allow-listed: a request must never make the server import a module of its choosing, nor
    run a file of its choosing."""
    if ":" not in name:
        return
    module = name.rpartition(":")[0]
    if module.endswith(".py") or "/" in module:
        raise TaskError(
            f"{where}: {name!r} names a file; the server takes a task by registered name or "
            "as 'package.module:function' from an allow-listed module"
        )
    if not any(fnmatch.fnmatchcase(module, pattern) for pattern in allowed):
        rule = ", ".join(allowed) if allowed else "none allowed"
        raise TaskError(
            f"{where}: {name!r} is not allowed: this server runs registered tasks, and "
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


@studies.get(
    "", summary="Every study: jobs and studies launched from the CLI", responses=responses(401)
)
def list_studies(request: Request, access: Reader) -> list[dict[str, Any]]:
    submitted = {job.study: job for job in jobs(request).all()}
    names = set(submitted) | set(reader(request).names())
    return [
        {"name": n, "state": submitted[n].state if n in submitted else None, "url": f"/studies/{n}"}
        for n in sorted(names)
    ]


def study_of(request: Request, name: str, trials: bool = False) -> tuple[Job | None, bool]:
    """The study's job (None for a study launched from the CLI), and whether Optuna has the
    study yet (a queued job's has not); 404 if neither exists, and with ``trials`` 409 for a
    study with none yet."""
    job = jobs(request).get(name)
    stored = name in reader(request).names()
    if job is None and not stored:
        raise ServiceError(404, f"no study {name!r}; GET /studies lists them")
    if trials and not stored:
        state = job.state if job is not None else "unknown"
        raise ServiceError(409, f"study {name!r} has no trial yet (its job is {state})")
    return job, stored


@studies.get(
    "/{name}",
    summary="A study's state, counts (as `groupwise status`) and best",
    responses=responses(401, 404),
)
def get_study(request: Request, name: str, access: Reader) -> dict[str, Any]:
    job, stored = study_of(request, name)
    body: dict[str, Any] = {"name": name, "state": None, "reason": None}
    if job is not None:
        body |= {
            "state": job.state,
            "reason": job.reason,
            "budget": job.document.get("budget"),
            "submitted_at": job.submitted_at.isoformat(),
            "resubmitted_at": _iso(job.resubmitted_at),
            "started_at": _iso(job.started_at),
            "ended_at": _iso(job.ended_at),
            "elapsed_s": job.elapsed_s(),
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


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@studies.get(
    "/{name}/trials",
    summary="The study's trials, by number, a page at a time",
    responses=responses(401, 404, 422),
)
def get_trials(
    request: Request,
    name: str,
    access: Reader,
    state: TrialClass | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    if not study_of(request, name)[1]:  # a queued job: no trial yet
        return {"total": 0, "offset": offset, "trials": []}
    page = read_trial_page(name, reader(request), state=state, offset=offset, limit=limit)
    return {"total": page.total, "offset": page.offset, "trials": list(page.trials)}


@studies.get(
    "/{name}/best",
    summary="The best trials, as `groupwise best --format json`",
    responses=responses(401, 404, 409, 422),
)
def get_best(
    request: Request, name: str, access: Reader, top: Annotated[int, Query(ge=1, le=1000)] = 1
) -> dict[str, Any]:
    study_of(request, name, trials=True)
    rows = best_trials(name, reader(request), max(top, 2))  # the runner-up: within noise?
    return best_document(rows, top, noise_note(rows))


@studies.get(
    "/{name}/config",
    summary="A trial's config (default: the best) as the YAML build_optimizer loads; with "
    "to_task, carried to that task's model at the options given (tune small, transfer big)",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"application/yaml": {"schema": {"type": "string"}}}},
        **responses(401, 404, 409, 422),
    },
)
def get_config(
    request: Request,
    name: str,
    access: Reader,
    trial: Annotated[int | None, Query(ge=0)] = None,
    to_task: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    option: Annotated[list[str] | None, Query(max_length=32)] = None,
    rule: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
) -> PlainTextResponse:
    study_of(request, name, trials=True)
    storage = reader(request)
    if to_task is not None:
        allowed = settings(request).allow_task_modules
        pairs = option or []
        text = transferred(name, storage, trial, to_task, pairs, rule or "sp-per-layer", allowed)
    elif option or rule:
        raise ServiceError(
            422, "option and rule say where to_task carries the config; give to_task"
        )
    elif trial is None:
        best = best_trials(name, storage, 1)[0]
        text = f"# {export_comment(best)}\n{best.config.to_yaml()}"
    else:
        text = trial_config(name, trial, storage).to_yaml()
    return PlainTextResponse(text, media_type="application/yaml")


def transferred(
    name: str,
    storage: Any,
    trial: int | None,
    to_task: str,
    option: list[str],
    rule: str,
    allowed: tuple[str, ...],
) -> str:
    """The config carried to ``to_task``: a registered task or the study's own (the service
    imports no code a request names), built on the meta device (no memory however wide);
    the YAML's first comment says what it is, the next ones its notes."""
    from groupwise.registry import key_values
    from groupwise.tasks import available_tasks
    from groupwise.transfer import carried, transfer_to_task

    proxy = study_task(name, storage)
    _check_task(proxy["name"], allowed, f"study {name!r}'s task")  # a CLI launch's, maybe
    if proxy.get("train"):
        raise ServiceError(
            422,
            f"study {name!r} trains a function task, whose model only its function builds; "
            "carry its config with `groupwise export --to-task` where that code is installed",
        )
    if to_task not in (proxy["name"], *available_tasks()):
        raise ServiceError(
            422,
            f"to_task: {to_task!r} is neither the study's task ({proxy['name']!r}) nor a "
            f"registered one ({', '.join(available_tasks())}); the service imports no code a "
            "request names: use `groupwise export --to-task` for your own",
        )
    if trial is None:
        trial = best_trials(name, storage, 1)[0].trial
    config = trial_config(name, trial, storage)
    done, target = transfer_to_task(config, proxy, to_task, key_values(option, "option"), rule)
    lines = [carried(name, trial, target, rule)]
    lines += [f"note: {note}" for note in done.notes]
    return "".join(f"# {line}\n" for line in lines) + done.config.to_yaml()


@studies.post(
    "/{name}/stop",
    summary="Start no more trials; the running ones finish",
    responses=responses(401, 403, 404, 409),
)
def stop(request: Request, name: str, access: Writer) -> dict[str, Any]:
    if study_of(request, name)[0] is None:
        raise ServiceError(
            409, f"study {name!r} was launched from the CLI, not submitted; stop it there"
        )
    job = jobs(request).request_stop(name)
    request.app.state.runner.wake()
    return {"name": name, "state": job.state}
