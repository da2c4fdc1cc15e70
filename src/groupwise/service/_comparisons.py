"""The routes that compare and report: one study by scheme, optimizer or group
(``/studies/{name}/compare``), studies of one task side by side (``/compare``), and a study's
report as a zip of its page and plots (``/studies/{name}/report``), as the CLI's ``compare``
and ``report`` make them."""

from __future__ import annotations

import dataclasses
import io
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from groupwise.analysis import compare, compare_studies, write_report
from groupwise.service._deps import Reader, reader, settings
from groupwise.service._openapi import responses
from groupwise.service._studies import study_of

__all__ = ["comparisons"]

comparisons = APIRouter(tags=["studies"])


@comparisons.get(
    "/studies/{name}/compare",
    summary="Per scheme, per group and optimizer, and per group lr",
    responses=responses(401, 404, 409, 422),
)
def get_compare(
    request: Request,
    name: str,
    access: Reader,
    by: Literal["scheme", "optimizer", "group", "schedule"] = "scheme",
    top: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> dict[str, Any]:
    """``rows`` are the ``by`` comparison's, as ``groupwise compare --by``; every view is there
    too (``by_scheme``, ``by_optimizer``, ``lr``, ``by_schedule``), with the study's
    ``counts``."""
    study_of(request, name, trials=True)
    found = compare(name, reader(request), top)
    every: dict[str, tuple[Any, ...]] = {
        "scheme": found.by_scheme,
        "optimizer": found.by_optimizer,
        "group": found.lr,
        "schedule": found.by_schedule,
    }
    return {
        "study": name,
        "metric": found.metric,
        "direction": found.direction,
        "top": found.top,
        "by": by,
        "rows": [dataclasses.asdict(r) for r in every[by]],
        "counts": dataclasses.asdict(found.counts),
        "by_scheme": [dataclasses.asdict(r) for r in found.by_scheme],
        "by_optimizer": [dataclasses.asdict(r) for r in found.by_optimizer],
        "lr": [dataclasses.asdict(r) for r in found.lr],
        "by_schedule": [dataclasses.asdict(r) for r in found.by_schedule],
    }


@comparisons.get(
    "/compare",
    summary="Studies of one task side by side, the first the baseline",
    responses=responses(401, 404, 409, 422),
)
def get_compare_studies(
    request: Request,
    access: Reader,
    study: Annotated[list[str], Query(min_length=2, max_length=50)],
) -> dict[str, Any]:
    for name in study:
        study_of(request, name, trials=True)
    found = compare_studies(study, reader(request))
    return {"baseline": study[0], "studies": [dataclasses.asdict(s) for s in found]}


@comparisons.get(
    "/studies/{name}/report",
    summary="The study's report (index.html and its plots as PNG) as a zip",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
        **responses(401, 404, 409, 422),
    },
)
async def get_report(request: Request, name: str, access: Reader) -> Response:
    study_of(request, name, trials=True)
    body = await run_in_threadpool(_zipped_report, name, settings(request).storage)
    headers = {"Content-Disposition": f'attachment; filename="{name}-report.zip"'}
    return Response(body, media_type="application/zip", headers=headers)


def _zipped_report(name: str, storage: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        written = write_report(name, folder, storage)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(written.directory).iterdir()):
                archive.write(path, path.name)
        return buffer.getvalue()
