"""The service: ``groupwise serve``, an authenticated REST API in front of the study database,
whose submitted studies run as jobs (one launch process each) that outlive the server.

FastAPI and uvicorn are imported here and nowhere else; the app never imports Ray (each
job's launch does, in its own process). optuna-dashboard is served here too: behind the API's
login, or alone (``groupwise dashboard``, :func:`run_dashboard`)."""

from groupwise.service._app import create_app
from groupwise.service._auth import Tokens, digest
from groupwise.service._dashboard import run_dashboard
from groupwise.service._deps import ServiceSettings
from groupwise.service._errors import MAX_BODY

__all__ = ["MAX_BODY", "ServiceSettings", "Tokens", "create_app", "digest", "run_dashboard"]
