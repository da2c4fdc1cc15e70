"""The REST API: a FastAPI app in front of the study database and the job runner.

One module a job: ``_deps`` (settings, shared objects, who may do what), ``_errors`` (every
error one ``{"error": line}``: 401 no or unknown token, 403 a read-only token that submits or
stops, 404 no such study, 409 a study that exists with other settings (or has no result yet),
413 a body over 1 MiB, 415 a body that is neither JSON nor YAML, 422 anything the study file
checks refuse), ``_studies`` (the ``/studies`` routes), ``_comparisons`` (``compare`` and
``report``), ``_pages`` (``/health``, the
dashboard's login), ``_dashboard`` (optuna-dashboard behind that login), ``_runner`` (the
jobs, one launch process each).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import optuna_dashboard
from fastapi import FastAPI

from groupwise import __version__
from groupwise.service._comparisons import comparisons
from groupwise.service._dashboard import DashboardGate, Sessions
from groupwise.service._deps import ServiceSettings
from groupwise.service._errors import BodyLimit, install_handlers
from groupwise.service._openapi import install_openapi
from groupwise.service._pages import health, pages
from groupwise.service._runner import Runner
from groupwise.service._studies import studies
from groupwise.store import Jobs, StudyReader
from groupwise.studyfiles import SPACE_NAME

__all__ = ["create_app"]


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
    install_handlers(app)
    spaces = (p.name for p in settings.spaces.glob("*") if SPACE_NAME.match(p.name))
    install_openapi(app, spaces, settings.allow_task_modules)
    app.include_router(health)
    app.include_router(studies)
    app.include_router(comparisons)
    app.include_router(pages)
    return app
