"""The ``groupwise`` command. Thin typer wrappers: the library raises one GroupwiseError with an
actionable sentence; only this layer prints it (one line, on stderr) and exits 2."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from groupwise.errors import ConfigError, GroupwiseError

# Each command imports what it needs when it runs: `groupwise --help` and `validate` must not
# pay for Ray (or, for --help, torch and Optuna). tests/test_architecture.py checks it.
if TYPE_CHECKING:
    from groupwise.analysis import BestTrial, StudyStatus, Table
    from groupwise.config import TrialConfig
    from groupwise.execution import LaunchResult
    from groupwise.execution import Progress as LaunchProgress
    from groupwise.remote import Remote
    from groupwise.store import Tally

app = typer.Typer(
    name="groupwise",
    help="Search how a PyTorch model's parameters are split into optimizer groups.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: rich markup would swallow "[default: ...]" and print types as metavars.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Piped output (CI logs, `| less`) gets room for whole names instead of rich's 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="GROUPWISE_STORAGE",
        metavar="URL",
        help="Database URL [default: sqlite:///groupwise.db].",
        show_default=False,
    ),
]


def _print_version(value: bool) -> None:
    if value:
        from groupwise import __version__  # the package only: no torch for this

        typer.echo(f"groupwise {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the groupwise version and exit (`groupwise version` adds torch's).",
        ),
    ] = False,
) -> None:
    """Search how a PyTorch model's parameters are split into optimizer groups."""


def _warn(lines: tuple[str, ...]) -> None:
    for line in lines:
        typer.echo(f"warning: {line}", err=True)


def render(table: Table) -> None:
    """A table as ``groupwise.analysis`` defines it, drawn with rich."""
    from rich.table import Table as RichTable

    drawn = RichTable(*table.columns)
    for row in table.rows:
        drawn.add_row(*row)
    out.print(drawn)


@contextmanager
def user_errors() -> Iterator[None]:
    """A GroupwiseError becomes one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except GroupwiseError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="GROUPWISE_SERVER",
        metavar="URL",
        help="Ask a `groupwise serve` instead of the database (token: GROUPWISE_API_TOKEN).",
        show_default=False,
    ),
]

HostOption = Annotated[
    str, typer.Option(metavar="HOST", help="Address to bind; loopback unless told.")
]
PortOption = Annotated[
    int, typer.Option(min=1, max=65535, metavar="PORT", help="Port to listen on.")
]


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


@app.command()
def launch(
    study_file: Annotated[
        Path, typer.Argument(metavar="STUDY_FILE", help="A study YAML file (see studies/).")
    ],
    trials: Annotated[
        int | None,
        typer.Option(
            min=1, metavar="N", help="Total finished trials to reach (a total, not more)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Ray worker actors.")
    ] = None,
    storage: StorageOption = None,
    ray_address: Annotated[
        str | None,
        typer.Option(metavar="HOST:PORT", help="Join a running Ray cluster (e.g. 127.0.0.1:6380)."),
    ] = None,
    server: ServerOption = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="With --server: submit, and return at once.")
    ] = False,
) -> None:
    """Run a study (or continue it) until its budget; show progress; print the best config."""
    if server:
        _launch_remote(study_file, server, trials=trials, workers=workers, detach=detach)
    else:
        _launch_here(study_file, trials, workers, storage, ray_address)


def _launch_here(
    study_file: Path,
    trials: int | None,
    workers: int | None,
    storage: str | None,
    ray_address: str | None,
) -> None:
    from groupwise.execution import launch as run_study
    from groupwise.plan import make_plan
    from groupwise.spec import read_study
    from groupwise.store import quiet_optuna

    quiet_optuna()  # our progress bar says it better than a log line per trial
    with user_errors():
        spec = read_study(study_file).with_overrides(trials=trials, workers=workers)
        plan = make_plan(spec)  # every check before the progress bar and the database
        _warn(plan.warnings)
        try:
            with _progress_bar(spec.name, spec.budget.trials) as update:
                result = run_study(
                    plan, storage=storage, ray_address=ray_address, on_progress=update
                )
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the launch turns it into this)
            typer.echo(
                "interrupted: the running trials are recorded as interrupted; run the same "
                "`groupwise launch` again to retry them and continue",
                err=True,
            )
            raise typer.Exit(130) from None
    _print_result(result, spec.objective.metric)


def _print_result(result: LaunchResult, metric: str) -> None:
    from groupwise.store import mask

    p = result.progress
    if result.note:
        out.print(result.note)
    out.print(
        f"study [bold]{result.study}[/] in {mask(result.storage)}: {p.finished} finished "
        f"({p.complete} complete, {p.pruned} pruned, {p.failed} failed"
        + (f"; {p.retried} lost and retried" if p.retried else "")
        + (f"; {p.counts.replayed} repeats of a finished config" if p.counts.replayed else "")
        + (f"; {p.counts.seeded} seeded from earlier studies" if p.counts.seeded else "")
        + f"), {result.ran} this launch"
    )
    if result.best_config is None:
        out.print("no complete trial yet; `groupwise status` lists the failure reasons")
        return
    out.print(f"best: trial {p.best_trial}, {metric} = {p.best:.6g}")
    out.print(result.best_config.to_yaml().rstrip())


def _launch_remote(
    study_file: Path, server: str, *, trials: int | None, workers: int | None, detach: bool
) -> None:
    """Submit the study (its space inlined) to the service, then follow it to its end."""
    from groupwise.remote import Remote
    from groupwise.spec import study_document

    with user_errors():
        remote = Remote.of(server)
        document = study_document(study_file)
        if trials is not None:
            document["budget"] = {**(document.get("budget") or {}), "trials": trials}
        if workers is not None:
            document["workers"] = {**(document.get("workers") or {}), "count": workers}
        answer = remote.submit(document)
    name = answer["name"]
    out.print(f"submitted study {name} to {server}: {answer['state']}")
    if detach:
        return
    body = _follow(remote, name, (document.get("budget") or {}).get("trials"))
    if body["state"] == "failed":
        typer.echo(f"error: study {name} failed on {server}: {body['reason']}", err=True)
        raise typer.Exit(2)
    counts = body.get("counts", {})
    out.print(
        f"study [bold]{name}[/] on {server}: {body['state']}: {counts.get('finished', 0)} "
        f"finished ({counts.get('complete', 0)} complete, {counts.get('pruned', 0)} pruned, "
        f"{counts.get('failed', 0)} failed)"
    )
    if body.get("best_trial") is None:
        out.print("no complete trial yet; `groupwise status` lists the failure reasons")
        return
    out.print(f"best: trial {body['best_trial']}, {body['metric']} = {body['best_value']:.6g}")
    with user_errors():
        out.print(remote.text(f"/studies/{name}/config").rstrip())


def _follow(remote: Remote, name: str, budget: int | None) -> dict[str, Any]:
    """The study's progress bar until it ends; Ctrl-C stops following, not the study."""
    import time

    from groupwise.execution import Progress as LaunchProgress
    from groupwise.store import FINAL

    try:
        with user_errors(), _progress_bar(name, budget) as update:
            while (body := remote.study(name))["state"] not in FINAL:
                update(LaunchProgress(_tally(body), budget, body.get("elapsed_s") or 0.0))
                time.sleep(1.0)
    except KeyboardInterrupt:
        typer.echo(
            f"stopped following; the study runs on at {remote.server} "
            f"(`groupwise status {name} --server {remote.server}`)",
            err=True,
        )
        raise typer.Exit(130) from None
    return body


def _tally(body: dict[str, Any]) -> Tally:
    """The counts a service answers with, as the one count's record."""
    from groupwise.store import Tally

    fields = {f.name for f in dataclasses.fields(Tally)}  # not "finished", a property
    return Tally(**{k: v for k, v in (body.get("counts") or {}).items() if k in fields})


@contextmanager
def _progress_bar(name: str, total: int | None) -> Iterator[Callable[[LaunchProgress], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "best {task.fields[best]}  running {task.fields[running]}  "
            "pruned {task.fields[pruned]}  failed {task.fields[failed]}"
        ),
        TimeElapsedColumn(),
    ]
    bar = Progress(*columns, console=Console(stderr=True), transient=False)
    task = bar.add_task(name, total=total, best="-", running=0, pruned=0, failed=0)

    def update(p: LaunchProgress) -> None:
        if not bar.live.is_started:  # drawn once trials run: set-up errors stay one line
            bar.start()
        best = "-" if p.best is None else f"{p.best:.4g}"
        bar.update(
            task,
            completed=p.finished,
            best=best,
            running=p.running,
            pruned=p.pruned,
            failed=p.failed,
        )

    try:
        yield update
    finally:
        if bar.live.is_started:
            bar.stop()


@app.command()
def status(
    study: Annotated[
        str | None, typer.Argument(metavar="STUDY", help="One study; default: all of them.")
    ] = None,
    storage: StorageOption = None,
    server: ServerOption = None,
) -> None:
    """Trial counts, best value and failure reasons per study."""
    from groupwise.analysis import status_table, study_status

    with user_errors():
        rows = _remote_status(server, study) if server else study_status(storage, study)
    render(status_table(rows))
    for r in rows:
        for number, reason in r.fail_reasons[-10:] if study else ():
            out.print(f"trial {number} {reason}")


def _remote_status(server: str, study: str | None) -> list[StudyStatus]:
    from groupwise.analysis import StudyStatus
    from groupwise.remote import Remote

    remote = Remote.of(server)
    names = [study] if study else [s["name"] for s in remote.get("/studies")]
    rows = []
    for body in (remote.study(name) for name in names):
        if "counts" not in body:
            continue  # queued: no trial yet
        rows.append(
            StudyStatus(
                study=body["name"],
                task=body["task"],
                metric=body["metric"],
                direction=body["direction"],
                counts=_tally(body),
                fail_reasons=(),
            )
        )
    return rows


@app.command()
def studies(storage: StorageOption = None) -> None:
    """List the studies in the database."""
    from groupwise.store import open_storage, study_names

    with user_errors():
        names = study_names(open_storage(storage))
    for name in names:
        out.print(name)


@app.command()
def best(
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name.")],
    top: Annotated[int, typer.Option(min=1, metavar="N", help="How many of the best trials.")] = 1,
    format: Annotated[
        Format, typer.Option("--format", metavar="table|json|yaml", help="Output format.")
    ] = Format.table,
    storage: StorageOption = None,
    server: ServerOption = None,
) -> None:
    """The best trials and their configs (json/yaml output feeds build_optimizer)."""
    from groupwise import _yaml
    from groupwise.analysis import best_document, best_table, best_trials

    with user_errors():
        rows = _remote_best(server, study, top) if server else best_trials(study, storage, top)
    document = best_document(rows, top)
    if format is Format.json:
        typer.echo(json.dumps(document, indent=2))
    elif format is Format.yaml:
        typer.echo(_yaml.dump(document).rstrip())
    else:
        render(best_table(rows))


def _remote_best(server: str, study: str, top: int) -> list[BestTrial]:
    from urllib.parse import quote

    from groupwise.analysis import BestTrial
    from groupwise.config import TrialConfig
    from groupwise.remote import Remote

    document = Remote.of(server).get(f"/studies/{quote(study)}/best", top=top)
    return [
        BestTrial(
            d["study"],
            d["trial"],
            d["value"],
            d["direction"],
            d["metric"],
            TrialConfig.from_dict(d["config"]),
        )
        for d in document.get("top", [document])
    ]


@app.command()
def export(
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name.")],
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", metavar="PATH", help="File to write: .yaml/.json, or .csv/.json."
        ),
    ],
    trial: Annotated[
        int | None, typer.Option(metavar="N", help="A trial number; default: the best.")
    ] = None,
    runs: Annotated[bool, typer.Option("--runs", help="Every run, one row each.")] = False,
    epochs: Annotated[bool, typer.Option("--epochs", help="Every epoch, one row each.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite PATH if it exists.")] = False,
    storage: StorageOption = None,
    server: ServerOption = None,
) -> None:
    """Write a trial's config for build_optimizer(model, "best.yaml"), or with --runs or
    --epochs every run or epoch of the study as CSV or JSON (for pandas)."""
    from groupwise.analysis import epoch_rows, load_best, run_rows, trial_config, write_rows

    with user_errors():
        _writable(output, force)
        if runs and epochs:
            raise ConfigError("--runs and --epochs write different tables; give one of them")
        if server:
            if runs or epochs:
                raise ConfigError("--runs and --epochs read the database; drop --server")
            out.print(f"wrote {_remote_config(server, study, trial).save(output)}")
            return
        if runs or epochs:
            rows = run_rows(study, storage) if runs else epoch_rows(study, storage)
            path = write_rows(rows, output)
            out.print(f"wrote {path} ({len(rows)} {'runs' if runs else 'epochs'})")
            return
        config = load_best(study, storage) if trial is None else trial_config(study, trial, storage)
        path = config.save(output)
    out.print(f"wrote {path}")


def _remote_config(server: str, study: str, trial: int | None) -> TrialConfig:
    from urllib.parse import quote

    from groupwise import _yaml
    from groupwise.config import TrialConfig
    from groupwise.remote import Remote

    text = Remote.of(server).text(f"/studies/{quote(study)}/config", trial=trial)
    return TrialConfig.from_dict(_yaml.load(text), source=f"{server} {study}")


def _writable(path: Path, force: bool) -> None:
    """Never overwrite a file without --force, and never write through a symlink (a dangling
    one would create a file wherever it points)."""
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; write to the file it names instead")
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it, or choose another path")


class By(StrEnum):
    scheme = "scheme"
    optimizer = "optimizer"
    group = "group"


@app.command()
def compare(
    studies: Annotated[
        list[str],
        typer.Argument(
            metavar="STUDY", help="A study; or several on one task, the first the baseline."
        ),
    ],
    by: Annotated[
        By,
        typer.Option(
            "--by", metavar="scheme|optimizer|group", help="What to compare within one study."
        ),
    ] = By.scheme,
    top: Annotated[
        int | None,
        typer.Option(
            min=1, metavar="N", help="How many best trials give the lr ranges [default: a fifth]."
        ),
    ] = None,
    storage: StorageOption = None,
) -> None:
    """Which scheme won, which optimizer won per group, each group's lr among the best; or
    several studies on one task side by side."""
    from groupwise import analysis

    with user_errors():
        if len(studies) > 1:
            render(analysis.studies_table(analysis.compare_studies(studies, storage)))
            return
        result = analysis.compare(studies[0], storage, top)
    tables = {
        By.scheme: analysis.scheme_table,
        By.optimizer: analysis.optimizer_table,
        By.group: analysis.lr_table,
    }
    render(tables[by](result))


@app.command()
def report(
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="DIR", help="Folder to write into.")
    ],
    storage: StorageOption = None,
) -> None:
    """An HTML report (index.html) with plots, and the plots as PNG files."""
    from groupwise.analysis import write_report

    with user_errors():
        written = write_report(study, output, storage)
    out.print(f"wrote {written.page} and {len(written.plots)} plots (PNG) in {written.directory}")


@app.command()
def dashboard(
    storage: StorageOption = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
) -> None:
    """optuna-dashboard on the study database. Each trial's groupwise.config shows there
    under its user attributes."""
    from optuna_dashboard import run_server

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
    run_server(opened, host=host, port=port)


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
        help="Run every job's workers on this Ray cluster; default: each job starts its own.",
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
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


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
    from groupwise.spec import read_study_document
    from groupwise.store import Jobs

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


@app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="Study or search-space YAML files.")
    ],
) -> None:
    """Check study and search-space files. Trains nothing, but a study's task is code: it is
    imported and its model built, to check it and partition it."""
    from groupwise.plan import make_plan
    from groupwise.spec import StudySpec, validate_file

    with user_errors():
        for path in files:
            loaded = validate_file(path)
            if isinstance(loaded, StudySpec):
                warnings = make_plan(loaded).warnings  # task, metric, partitions, sampler...
                _warn(warnings)
                schemes = len(loaded.space.schemes)
                kind = f"study {loaded.name!r} (task {loaded.task.name}, {schemes} schemes)"
                kind += f"; {len(warnings)} warning(s) above" if warnings else ""
            else:
                counts = f"{len(loaded.schemes)} schemes, {len(loaded.optimizers)} optimizers"
                kind = f"search space ({counts})"
            out.print(f"{path}: ok: {kind}")


@app.command()
def demo(
    steps: Annotated[int, typer.Option(min=1, metavar="N", help="Training steps to run.")] = 60,
) -> None:
    """Partition a small character LM every way and train it with a mixed optimizer."""
    from groupwise import _demo

    losses = _demo.run(steps=steps, echo=typer.echo)
    typer.echo(f"\nloss {losses[0]:.3f} -> {losses[-1]:.3f} in {steps} steps")


@app.command()
def version() -> None:
    """Print the groupwise and torch versions."""
    import torch

    from groupwise import __version__

    typer.echo(f"groupwise {__version__} (torch {torch.__version__})")


def main() -> None:
    """Console entry point: usage errors too become one line and exit 2."""
    # "module:function" tasks may live in the directory we run from, but it goes last: a stray
    # sklearn.py there must not replace an installed package.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="groupwise", standalone_mode=False)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except GroupwiseError as e:  # raised outside a command's user_errors()
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except Exception as e:
        # click's usage errors (typer vendors its own click, so match the interface, not a class)
        if type(e).__name__ == "NoArgsIsHelpError":  # typer has printed the help already
            sys.exit(2)
        if callable(getattr(e, "format_message", None)) and hasattr(e, "exit_code"):
            typer.echo(f"error: {e.format_message()}", err=True)  # type: ignore[attr-defined]
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
