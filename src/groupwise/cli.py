"""The ``groupwise`` command. Thin typer wrappers: the library raises one GroupwiseError with an
actionable sentence; only this layer prints it (one line, on stderr) and exits 2."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from groupwise.errors import ConfigError, GroupwiseError

# Each command imports what it needs when it runs: `groupwise --help` and `validate` must not
# pay for Ray (or, for --help, torch and Optuna). tests/test_architecture.py checks it.
if TYPE_CHECKING:
    from groupwise.analysis import Table
    from groupwise.execution import Progress as LaunchProgress

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
) -> None:
    """Run a study (or continue it) until its budget; show progress; print the best config."""
    from groupwise.execution import launch as run_study
    from groupwise.plan import make_plan
    from groupwise.spec import read_study
    from groupwise.store import mask, quiet_optuna

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
    out.print(f"best: trial {p.best_trial}, {spec.objective.metric} = {p.best:.6g}")
    out.print(result.best_config.to_yaml().rstrip())


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
) -> None:
    """Trial counts, best value and failure reasons per study."""
    from groupwise.analysis import status_table, study_status

    with user_errors():
        rows = study_status(storage, study)
    render(status_table(rows))
    for r in rows:
        for number, reason in r.fail_reasons[-10:] if study else ():
            out.print(f"trial {number} {reason}")


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
) -> None:
    """The best trials and their configs (json/yaml output feeds build_optimizer)."""
    from groupwise import _yaml
    from groupwise.analysis import best_table, best_trials

    with user_errors():
        rows = best_trials(study, storage, top)
    document = rows[0].to_dict()
    if top > 1:
        document["top"] = [r.to_dict() for r in rows]
    if format is Format.json:
        typer.echo(json.dumps(document, indent=2))
    elif format is Format.yaml:
        typer.echo(_yaml.dump(document).rstrip())
    else:
        render(best_table(rows))


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
) -> None:
    """Write a trial's config for build_optimizer(model, "best.yaml"), or with --runs or
    --epochs every run or epoch of the study as CSV or JSON (for pandas)."""
    from groupwise.analysis import epoch_rows, load_best, run_rows, trial_config, write_rows

    with user_errors():
        _writable(output, force)
        if runs and epochs:
            raise ConfigError("--runs and --epochs write different tables; give one of them")
        if runs or epochs:
            rows = run_rows(study, storage) if runs else epoch_rows(study, storage)
            path = write_rows(rows, output)
            out.print(f"wrote {path} ({len(rows)} {'runs' if runs else 'epochs'})")
            return
        config = load_best(study, storage) if trial is None else trial_config(study, trial, storage)
        path = config.save(output)
    out.print(f"wrote {path}")


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
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Address to bind; loopback unless told.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, metavar="PORT", help="Port to listen on.")
    ] = 8080,
) -> None:
    """optuna-dashboard on the study database. Each trial's groupwise.config shows there
    under its user attributes."""
    from optuna_dashboard import run_server

    from groupwise.store import mask, open_storage, resolve_url

    with user_errors():
        opened = open_storage(storage)  # never creates a database
    try:  # a port in use is one line, before the web server prints its banner
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        typer.echo(
            f"error: cannot serve on {host}:{port}: {e.strerror or e}; pick another --port "
            "or stop what holds it",
            err=True,
        )
        raise typer.Exit(2) from None
    if ipaddress.ip_address(socket.gethostbyname(host)).is_loopback is False:
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
