"""The API's OpenAPI document as the server really answers: every status a route can answer,
each error as the ``{"error": line}`` body, and ``POST /studies``'s body as a study document
with the names this server knows (its tasks, search spaces, samplers, pruners and recipes).

A schema cannot say everything a study must be (a metric its task reports, stale_after_s
longer than heartbeat_s, a model its schemes fit): a document that passes the schema and not
those checks is refused 422 with the one line that says why; 409 says a study of that name
exists with another identity.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from groupwise.plan import PRUNERS, SAMPLERS
from groupwise.recipes import RECIPES
from groupwise.studyfiles import StudySpec
from groupwise.tasks import available_tasks

__all__ = ["DOCUMENT", "ErrorBody", "install_openapi", "responses"]

REF = "#/components/schemas/{model}"
DOCUMENT = REF.format(model="StudyDocument")

_SAID = {
    401: "No token, or an unknown one",
    403: "A read-only token asked to write",
    404: "No such study",
    409: "The study exists with another identity, or has no result yet",
    413: "The request body is over 1 MiB",
    415: "The body is neither JSON nor YAML",
    422: "A parameter or a study the checks refuse; the line says which and why",
    503: "The database or Ray cannot be reached",
}


class ErrorBody(BaseModel):
    """Every refusal: one line, as the CLI prints it."""

    error: str


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error statuses a route answers, each with the error body (JSON, whatever the
    route's own answers are)."""
    body = {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}
    return {code: {"description": _SAID[code], "content": body} for code in codes}


def install_openapi(app: FastAPI, spaces: Iterable[str], task_modules: Iterable[str]) -> None:
    """Make ``app.openapi()`` add the study document (and what it refers to) to the
    document's schemas; ``spaces`` are the server's search-space files, ``task_modules`` its
    allow-listed module patterns."""
    defs, document = _study_document(sorted(spaces), list(task_modules))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            error = ErrorBody.model_json_schema(ref_template=REF)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                {**defs, "StudyDocument": document, "ErrorBody": error}
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _study_document(
    spaces: list[str], task_modules: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A study file as JSON (its search space by name, or inline), from the study model."""
    schema = StudySpec.model_json_schema(ref_template=REF)
    defs: dict[str, Any] = schema.pop("$defs")
    for internal in ("space", "source"):
        schema["properties"].pop(internal)
    schema["required"] = [k for k in schema["required"] if k != "space"]
    schema["title"] = "StudyDocument"
    props = schema["properties"]
    named = [{"type": "string", "enum": spaces}] if spaces else []
    props["search_space"] = {
        "description": "One of the server's search spaces by file name, or a space inline",
        "anyOf": [*named, {"$ref": REF.format(model="SearchSpace")}],
    }
    task_name = _task_names(task_modules)
    defs["TaskRef"]["properties"]["name"] = task_name
    props["task"] = {"anyOf": [task_name, {"$ref": REF.format(model="TaskRef")}]}
    props["sampler"] = _named("sampler", SAMPLERS.names())
    props["pruner"] = _named("pruner", PRUNERS.names())
    recipes = {"type": "array", "items": {"type": "string", "enum": RECIPES.names()}}
    defs["WarmStart"]["properties"]["recipes"] = {"anyOf": [recipes, {"type": "null"}]}
    props["warm_start"] = {"anyOf": [recipes, {"$ref": REF.format(model="WarmStart")}]}
    return defs, schema


def _task_names(modules: list[str]) -> dict[str, Any]:
    """Registered tasks, and ``module:function`` of an allow-listed module (if any)."""
    registered = {"type": "string", "enum": available_tasks()}
    if not modules:
        return registered
    patterns = "|".join(fnmatch.translate(m).removesuffix(r"\Z") for m in modules)
    allowed = {"type": "string", "pattern": rf"^(?:{patterns}):[A-Za-z_][A-Za-z0-9_]*$"}
    return {"anyOf": [registered, allowed]}


def _named(kind: str, names: list[str]) -> dict[str, Any]:
    name = {"type": "string", "enum": names}
    entry = {
        "type": "object",
        "properties": {"name": name, "options": {"type": "object"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    return {"description": f"A {kind} by name, with options", "anyOf": [name, entry]}
