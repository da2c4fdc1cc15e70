"""``groupwise launch``: run a study here (Ray and the database) or on a service, with a
progress bar, and print the best config."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from groupwise.cli._common import ServerOption, StorageOption, app, out, user_errors, warn

if TYPE_CHECKING:
    from groupwise import remote
    from groupwise.execution import LaunchResult
    from groupwise.execution import Progress as LaunchProgress
    from groupwise.store import Tally

__all__ = ["launch"]


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
    from groupwise.store import quiet_optuna
    from groupwise.studyfiles import read_study

    quiet_optuna()  # our progress bar says it better than a log line per trial
    with user_errors():
        spec = read_study(study_file).with_overrides(trials=trials, workers=workers)
        plan = make_plan(spec)  # every check before the progress bar and the database
        warn(plan.warnings)
        try:
            with progress_bar(spec.name, spec.budget.trials) as update:
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
        + (f"; {p.counts.voided} voided (a broken task's)" if p.counts.voided else "")
        + (f"; {p.counts.confirmations} confirmations" if p.counts.confirmations else "")
        + f"), {result.ran} this launch"
    )
    if result.best_config is None:
        out.print("no complete trial yet; `groupwise status` lists the failure reasons")
        return
    out.print(f"best: trial {p.best_trial}, {metric} = {p.best:.6g}{_seeds(p.counts)}")
    out.print(result.best_config.to_yaml().rstrip())
    if result.transferred is not None:
        t = result.transferred
        out.print(
            f"transferred by {t.rule} to its target (recorded with the study; "
            f"`groupwise transfer-check {result.study}` trains it there):",
            markup=False,
        )
        out.print(t.config.to_yaml().rstrip(), markup=False)
        for note in t.notes:
            out.print(f"  note: {note}", markup=False)


def _seeds(counts: Tally) -> str:
    """What a best value is: a mean over fresh seeds (the confirmed leader's), or one trial's."""
    if not counts.best_seeds:
        return ""
    spread = "" if counts.best_spread is None else f", sd {counts.best_spread:.3g}"
    return f" (mean over {counts.best_seeds} fresh seeds{spread})"


def _launch_remote(
    study_file: Path, server: str, *, trials: int | None, workers: int | None, detach: bool
) -> None:
    """Submit the study (its space inlined) to the service, then follow it to its end."""
    from groupwise import remote
    from groupwise.studyfiles import study_document

    with user_errors():
        client = remote.Remote.of(server)
        document, answer = remote.submit(
            client, study_document(study_file), trials=trials, workers=workers
        )
    name = answer["name"]
    out.print(f"submitted study {name} to {server}: {answer['state']}")
    if detach:
        return
    ended = _follow(client, name, (document.get("budget") or {}).get("trials"))
    if ended.failed:
        typer.echo(f"error: study {name} failed on {server}: {ended.body['reason']}", err=True)
        raise typer.Exit(2)
    c = ended.counts
    out.print(
        f"study [bold]{name}[/] on {server}: {ended.body['state']}: {c.finished} finished "
        f"({c.complete} complete, {c.pruned} pruned, {c.failed} failed)"
    )
    if c.best_trial is None:
        out.print("no complete trial yet; `groupwise status` lists the failure reasons")
        return
    out.print(f"best: trial {c.best_trial}, {ended.body['metric']} = {c.best_value:.6g}{_seeds(c)}")
    with user_errors():
        out.print(remote.trial_config(client, name, None).to_yaml().rstrip())


def _follow(client: remote.Remote, name: str, budget: int | None) -> remote.Followed:
    """The study's progress bar until it ends; Ctrl-C stops following, not the study."""
    from groupwise import remote

    try:
        with user_errors(), progress_bar(name, budget) as update:
            return remote.follow(client, name, budget, update)
    except KeyboardInterrupt:
        typer.echo(
            f"stopped following; the study runs on at {client.server} "
            f"(`groupwise status {name} --server {client.server}`)",
            err=True,
        )
        raise typer.Exit(130) from None


@contextmanager
def progress_bar(name: str, total: int | None) -> Iterator[Callable[[LaunchProgress], None]]:
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
