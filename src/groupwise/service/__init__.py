"""The service: ``groupwise serve``, an authenticated REST API in front of the study database,
whose submitted studies run as jobs (one launch process each) that outlive the server.

FastAPI and uvicorn are imported here and nowhere else; the app never imports Ray (each
job's launch does, in its own process)."""

from groupwise.service._app import MAX_BODY, ServiceSettings, create_app
from groupwise.service._auth import Tokens, digest

__all__ = ["MAX_BODY", "ServiceSettings", "Tokens", "create_app", "digest"]
