"""What every route depends on: the server's settings and shared objects (on ``app.state``),
and who may do what (FastAPI dependencies: a read needs any token, a write a full one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from groupwise.service._auth import Access, Tokens
from groupwise.service._errors import ServiceError
from groupwise.store import Jobs, StudyReader

__all__ = ["Reader", "ServiceSettings", "Writer", "jobs", "reader", "settings"]


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


def settings(request: Request) -> ServiceSettings:
    found: ServiceSettings = request.app.state.settings
    return found


def reader(request: Request) -> StudyReader:
    """The one storage the server reads studies through (each study mirrored in memory)."""
    found: StudyReader = request.app.state.reader
    return found


def jobs(request: Request) -> Jobs:
    found: Jobs = request.app.state.jobs
    return found


_bearer = HTTPBearer(auto_error=False, description="A token from GROUPWISE_API_TOKENS")


def _access(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Access:
    if settings(request).no_auth:
        return "full"
    access = settings(request).tokens.access(credentials.credentials if credentials else None)
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
