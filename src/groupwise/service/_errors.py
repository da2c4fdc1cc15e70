"""How the API says no: every error is one line, as the CLI prints it, in
``{"error": "..."}`` with a 4xx status, whoever raises it (a route, FastAPI's validation,
Starlette's routing, the body limit)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groupwise.errors import GroupwiseError, StudyError, one_line

__all__ = ["MAX_BODY", "BodyLimit", "ServiceError", "error", "install_handlers"]

MAX_BODY = 2**20


class ServiceError(Exception):
    """A refusal with its HTTP status (the routes' own: 401, 403, 404, 409, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"error": one_line(message)}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def install_handlers(app: FastAPI) -> None:
    """Every exception a request can end in, as one ``{"error": line}``: a StudyError is 409
    (the study exists with other settings, or has no result yet), any other GroupwiseError
    422 (what the study file checks refuse)."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, e: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return error(e.status, str(e), headers)

    @app.exception_handler(GroupwiseError)
    async def groupwise_error(request: Request, e: GroupwiseError) -> JSONResponse:
        return error(409 if isinstance(e, StudyError) else 422, str(e))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail), e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        at = ".".join(str(p) for p in first.get("loc", ()))
        got = first.get("input")
        shown = f" (got {json.dumps(got)[:80]})" if isinstance(got, str | int | float) else ""
        return error(422, f"{at}: {first.get('msg', 'invalid')}{shown}")


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
        response = error(413, f"the request body is over {self.limit:,} bytes (1 MiB)")
        await response(scope, receive, send)


class _BodyTooLargeError(Exception):
    pass
