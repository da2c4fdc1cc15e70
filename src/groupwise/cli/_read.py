"""The commands that read studies (``status``, ``studies``, ``best``, ``export``, ``compare``,
``report``), from the database or, with ``--server``, from a service. None needs torch or
Ray."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from groupwise.cli._common import (
    Format,
    ServerOption,
    StorageOption,
    app,
    out,
    render,
    user_errors,
)
from groupwise.errors import ConfigError

if TYPE_CHECKING:
    from groupwise.analysis import BestTrial
    from groupwise.remote import Remote

__all__ = ["best", "compare", "export", "report", "status", "studies"]


@app.command()
def status(
    study: Annotated[
        str | None, typer.Argument(metavar="STUDY", help="One study; default: all of them.")
    ] = None,
    storage: StorageOption = None,
    server: ServerOption = None,
) -> None:
    """Trial counts, best value and failure reasons per study."""
    from groupwise import remote
    from groupwise.analysis import status_table, study_status

    with user_errors():
        if server:
            rows = remote.study_statuses(remote.Remote.of(server), study)
        else:
            rows = study_status(storage, study)
    render(status_table(rows))
    for r in rows:
        for number, reason in r.fail_reasons[-10:] if study else ():
            out.print(f"trial {number} {reason}")


@app.command()
def studies(storage: StorageOption = None, server: ServerOption = None) -> None:
    """List the studies in the database."""
    from groupwise import remote
    from groupwise.store import open_storage, study_names

    with user_errors():
        if server:
            names = remote.study_names(remote.Remote.of(server))
        else:
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
    """The best configs (the confirmed leaders first, by their mean over fresh seeds) and
    their configs (json/yaml output feeds build_optimizer)."""
    from groupwise import _yaml, remote
    from groupwise.analysis import best_document, best_table, best_trials, noise_note

    wanted = max(top, 2)  # the runner-up says whether the leader is within its noise
    with user_errors():
        if server:
            rows = remote.best_trials(remote.Remote.of(server), study, wanted)
        else:
            rows = best_trials(study, storage, wanted)
    note = noise_note(rows)
    document = best_document(rows, top, note)
    if format is Format.json:
        typer.echo(json.dumps(document, indent=2))
    elif format is Format.yaml:
        typer.echo(_yaml.dump(document).rstrip())
    else:
        render(best_table(rows[:top]))
        if note:
            out.print(note)


# export --to-task's options: where a config is carried (tune small, transfer big)
ToTaskOption = Annotated[
    str | None,
    typer.Option(
        "--to-task",
        metavar="TASK",
        help="Carry the config to this task's model (the study's task with --option "
        "width=512: a wider one), each group's lr by --rule.",
    ),
]
TargetOption = Annotated[
    list[str] | None,
    typer.Option("--option", metavar="KEY=VALUE", help="A target task option (repeatable)."),
]
RuleOption = Annotated[
    str | None,
    typer.Option("--rule", metavar="RULE", help="sp-per-layer (default), mup or none (a copy)."),
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
    to_task: ToTaskOption = None,
    option: TargetOption = None,
    rule: RuleOption = None,
    storage: StorageOption = None,
    server: ServerOption = None,
) -> None:
    """Write a trial's config for build_optimizer(model, "best.yaml"), or with --runs or
    --epochs every run or epoch of the study as CSV or JSON (for pandas). With --to-task,
    the config carried to a wider model (tune small, transfer big)."""
    from groupwise import remote
    from groupwise.analysis import best_trials, trial_config

    with user_errors():
        _writable(output, force)
        if runs and epochs:
            raise ConfigError("--runs and --epochs write different tables; give one of them")
        if to_task is not None or option or rule:
            if runs or epochs:
                raise ConfigError("--to-task carries a config; drop --runs/--epochs")
            _export_to_task(output, study, trial, to_task, option or [], rule, storage, server)
            return
        if runs or epochs:
            _export_rows(output, study, runs, storage, server)
            return
        client = remote.Remote.of(server) if server else None
        if trial is not None:
            config = (
                remote.trial_config(client, study, trial)
                if client
                else trial_config(study, trial, storage)
            )
            out.print(f"wrote {config.save(output)}")
            return
        best = (remote.best_trials(client, study, 1) if client else best_trials(study, storage))[0]
        _wrote(output, best)


def _export_rows(
    output: Path, study: str, runs: bool, storage: str | None, server: str | None
) -> None:
    """``export --runs`` or ``--epochs``: the study's runs or epochs as rows."""
    from groupwise.analysis import epoch_rows, run_rows, write_rows

    if server:
        raise ConfigError("--runs and --epochs read the database; drop --server")
    rows = run_rows(study, storage) if runs else epoch_rows(study, storage)
    path = write_rows(rows, output)
    out.print(f"wrote {path} ({len(rows)} {'runs' if runs else 'epochs'})")


def _export_to_task(
    output: Path,
    study: str,
    trial: int | None,
    to_task: str | None,
    option: list[str],
    rule: str | None,
    storage: str | None,
    server: str | None,
) -> None:
    """``export --to-task``: the config carried to the target's model, its notes printed."""
    if to_task is None:
        raise ConfigError(
            "--option and --rule say where --to-task carries the config; give --to-task"
        )
    from groupwise import remote
    from groupwise.analysis import best_trials, study_task, trial_config
    from groupwise.registry import key_values
    from groupwise.transfer import carried, transfer_to_task

    rule = rule or "sp-per-layer"
    options = key_values(option, "--option")
    if server:
        client = remote.Remote.of(server)
        config, lines = remote.transferred_config(client, study, trial, to_task, option, rule)
        comment, notes = lines[0], [line.removeprefix("note: ") for line in lines[1:]]
    else:
        if trial is None:
            trial = best_trials(study, storage)[0].trial
        proxy = study_task(study, storage)
        done, target = transfer_to_task(
            trial_config(study, trial, storage), proxy, to_task, options, rule
        )
        config, notes = done.config, list(done.notes)
        comment = carried(study, trial, target, rule)
    out.print(f"wrote {config.save(output, comment=comment)}: {comment}", markup=False)
    for note in notes:
        out.print(f"  note: {note}", markup=False)


def _wrote(output: Path, best: BestTrial) -> None:
    """Write the best config, its score (the mean over its fresh seeds, where the study
    confirmed its leaders) the YAML's first line, and say so."""
    from groupwise.analysis import export_comment

    comment = export_comment(best)
    out.print(f"wrote {best.config.save(output, comment=comment)}: {comment}")


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
    schedule = "schedule"


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
            "--by",
            metavar="scheme|optimizer|group|schedule",
            help="What to compare within one study.",
        ),
    ] = By.scheme,
    top: Annotated[
        int | None,
        typer.Option(
            min=1, metavar="N", help="How many best trials give the lr ranges [default: a fifth]."
        ),
    ] = None,
    storage: StorageOption = None,
    server: ServerOption = None,
) -> None:
    """Which scheme won, which optimizer won per group, each group's lr among the best; or
    several studies on one task side by side."""
    from groupwise import analysis, remote

    with user_errors():
        client = remote.Remote.of(server) if server else None
        if len(studies) > 1:
            _side_by_side(studies, storage, client)
            return
        if client:
            result = remote.comparison(client, studies[0], top)
        else:
            result = analysis.compare(studies[0], storage, top)
    tables = {
        By.scheme: analysis.scheme_table,
        By.optimizer: analysis.optimizer_table,
        By.group: analysis.lr_table,
        By.schedule: analysis.schedule_table,
    }
    render(tables[by](result))


def _side_by_side(studies: list[str], storage: str | None, client: Remote | None) -> None:
    """Studies of one task side by side, with a warning for each whose task ran otherwise."""
    from groupwise import analysis, remote

    summaries = (
        remote.compared_studies(client, studies)
        if client
        else analysis.compare_studies(studies, storage)
    )
    render(analysis.studies_table(summaries))
    for s in summaries:
        if s.task_differs:
            typer.echo(
                f"warning: study {s.study!r} ran its task with other settings than "
                f"{studies[0]!r} ({s.task_differs}): its values come from other data or "
                "another model, so they compare only loosely",
                err=True,
            )


@app.command()
def report(
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="DIR", help="Folder to write into.")
    ],
    storage: StorageOption = None,
    server: ServerOption = None,
) -> None:
    """An HTML report (index.html) with plots, and the plots as PNG files."""
    from groupwise import remote
    from groupwise.analysis import write_report

    with user_errors():
        if server:
            files = remote.report(remote.Remote.of(server), study, output)
            plots = [f for f in files if f.suffix == ".png"]
            out.print(f"wrote {output / 'index.html'} and {len(plots)} plots (PNG) in {output}")
            return
        written = write_report(study, output, storage)
    out.print(f"wrote {written.page} and {len(written.plots)} plots (PNG) in {written.directory}")
