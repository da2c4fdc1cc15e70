"""The commands that serve: the REST API (``serve``) and its jobs (``run-job``), the tokens it
takes (``hash-token``), and optuna-dashboard alone (``dashboard``)."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from groupwise.cli._common import HostOption, PortOption, StorageOption, app, out, user_errors
from groupwise.errors import ConfigError

__all__ = ["dashboard", "hash_token", "run_job", "serve"]


@app.command()
def dashboard(
    storage: StorageOption = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
) -> None:
    """optuna-dashboard on the study database. Each trial's groupwise.config shows there
    under its user attributes."""
    from groupwise.service import run_dashboard
    from groupwise.store import mask, open_storage, resolve_url

    with user_errors():
        opened = open_storage(storage)  # never creates a database
    _port_free(host, port)
    if not _loopback(host):
        typer.echo(
            f"warning: optuna-dashboard has no login, and its API can delete studies; on "
            f"{host} anyone who reaches this port can; serve it behind `groupwise serve` "
            "(token login) instead",
            err=True,
        )
    out.print(
        f"optuna-dashboard for {mask(resolve_url(storage))} on http://{host}:{port} (Ctrl-C stops)"
    )
    run_dashboard(opened, host, port)


def _port_free(host: str, port: int) -> None:
    """A port in use (or a host that does not resolve) is one line, before a web server
    prints its banner."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        typer.echo(
            f"error: cannot serve on {host}:{port}: {e.strerror or e}; pick another --port "
            "or stop what holds it",
            err=True,
        )
        raise typer.Exit(2) from None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except OSError as e:
        raise ConfigError(f"--host {host!r} does not resolve ({e}); give an address") from None


JobsRayOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        metavar="ADDRESS",
        help="Run every job's workers on this Ray cluster; default: one local Ray head this "
        "server starts with its first job and shares among all its jobs.",
    ),
]
TokensFileOption = Annotated[
    Path | None,
    typer.Option(
        "--tokens-file",
        metavar="PATH",
        help="Hashed tokens, one `full|read sha256:<hex>` per line (groupwise hash-token).",
    ),
]
AllowTaskOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-task-module",
        metavar="PATTERN",
        help="Modules whose module:function tasks submitted studies may name (fnmatch; "
        "repeatable). Default: registered tasks only.",
    ),
]
SpacesOption = Annotated[
    Path, typer.Option(metavar="DIR", help="The search spaces submitted studies may name.")
]
NoAuthOption = Annotated[
    bool, typer.Option("--no-auth", help="No tokens (only on a loopback address).")
]
JobsOption = Annotated[
    bool,
    typer.Option(
        "--jobs/--no-jobs",
        help="Run submitted studies; --no-jobs records them only, for another server on the "
        "same database to run (one server runs a database's jobs).",
    ),
]


@app.command()
def serve(
    storage: StorageOption = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    ray_address: JobsRayOption = None,
    tokens_file: TokensFileOption = None,
    allow_task_module: AllowTaskOption = None,
    spaces: SpacesOption = Path("search_spaces"),
    no_auth: NoAuthOption = False,
    jobs: JobsOption = True,
) -> None:
    """The REST API (docs at /docs): submit studies, follow and stop them, query results.
    Tokens: GROUPWISE_API_TOKENS (full) and GROUPWISE_API_READ_TOKENS (read-only)."""
    import uvicorn

    from groupwise.service import ServiceSettings, Tokens, create_app
    from groupwise.store import mask, resolve_url

    with user_errors():
        tokens = Tokens.load(file=tokens_file)
        if tokens.empty and not no_auth:
            raise ConfigError(
                "no API token configured: set GROUPWISE_API_TOKENS (comma-separated) or give "
                "--tokens-file; or, on a loopback address only, --no-auth"
            )
        if no_auth and not _loopback(host):
            raise ConfigError(f"--no-auth is refused on {host}: without tokens, loopback only")
        settings = ServiceSettings(
            storage=resolve_url(storage),
            spaces=spaces.resolve(),
            tokens=tokens,
            no_auth=no_auth,
            ray_address=ray_address,
            allow_task_modules=tuple(allow_task_module or ()),
            run_jobs=jobs,
        )
    _port_free(host, port)
    if not _loopback(host):
        typer.echo(
            f"warning: serving plain HTTP on {host}: tokens cross the network in clear; put "
            "TLS in front (a reverse proxy) or bind 127.0.0.1",
            err=True,
        )
    out.print(
        f"groupwise service for {mask(settings.storage)} on http://{host}:{port} "
        f"(docs at /docs; Ctrl-C stops, running jobs resume at the next start)"
    )
    _log_lifecycle()
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def _log_lifecycle() -> None:
    """The server's own log on stderr: a line as each job is submitted, starts, resumes,
    ends or fails, and as the server starts and stops (never a token or a password)."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger = logging.getLogger("groupwise.service")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


@app.command("hash-token")
def hash_token(
    access: Annotated[
        str, typer.Argument(metavar="full|read", help="What the token may do.")
    ] = "full",
) -> None:
    """Read a token on stdin, print its line for `groupwise serve --tokens-file`."""
    from groupwise.service import digest

    with user_errors():
        if access not in ("full", "read"):
            raise ConfigError(f"access: {access!r}; use full or read")
        token = sys.stdin.readline().strip()
        if not token:
            raise ConfigError('no token on stdin; e.g. `echo "$TOKEN" | groupwise hash-token`')
    typer.echo(f"{access} sha256:{digest(token)}")


@app.command("run-job", hidden=True)
def run_job(
    study: Annotated[str, typer.Argument(metavar="STUDY")],
    storage: StorageOption = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", metavar="ADDRESS")] = None,
) -> None:
    """(Used by `groupwise serve`.) Launch a submitted study from its job record."""
    from groupwise.execution import launch as run_study
    from groupwise.store import Jobs
    from groupwise.studyfiles import read_study_document

    with user_errors():
        job = Jobs(storage).get(study)
        if job is None:
            raise ConfigError(f"no job for study {study!r}")
        spec = read_study_document(job.document, where=f"job {study}", spaces=Path("."))
        try:
            result = run_study(spec, storage=storage, ray_address=ray_address)
        except KeyboardInterrupt:
            typer.echo("interrupted: the running trials are recorded as interrupted", err=True)
            raise typer.Exit(130) from None
    out.print(f"{study}: {result.note or 'budget spent'}")
